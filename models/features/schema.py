"""What an account-day feature vector holds: names, units, definitions, the parameters that fix
their meaning, and a hash of all of it.

A model artefact records the hash of the schema it was fitted on; a worker whose code computes
features differently (another feature, another unit, another bound) has another hash and must not
score with that artefact. The parameters belong to the hash because they change what a value
means: a "new" counterparty is new against HISTORY_DAYS days, and a distinct count is exact only
up to the counterparty sample.
"""

from __future__ import annotations

import hashlib

import msgspec

# The account's own history: the Beijing days before the judged day that growth, new
# counterparties and the account's usual range are measured against.
HISTORY_DAYS = 14
# Days kept after the judged one: the detectors seal a Beijing day two days after its end
# (models/detectors/common.ALLOWED_LATENESS), so the stream judges a day while up to three newer
# days are open already.
PENDING_DAYS = 3
KEPT_DAYS = HISTORY_DAYS + 1 + PENDING_DAYS
# Counterparty hashes kept per day and direction (the smallest ones: a bottom-k sample).
COUNTERPARTY_SAMPLE = 32
NIGHT_HOURS = range(0, 6)  # Beijing 00:00 to 05:59
PASS_THROUGH_CAP = 10.0
DWELL_FULL_DAY_HOURS = 24.0
ROUND_1K_CENTS = 1_000 * 100
ROUND_10K_CENTS = 10_000 * 100


class FeatureSpec(msgspec.Struct, frozen=True):
    name: str
    unit: str
    definition: str


class FeatureSchema(msgspec.Struct, frozen=True):
    version: str
    features: tuple[FeatureSpec, ...]
    parameters: dict[str, float | int | str]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(spec.name for spec in self.features)

    @property
    def units(self) -> tuple[str, ...]:
        return tuple(spec.unit for spec in self.features)

    def hash(self) -> str:
        """sha256 of the schema's canonical JSON (keys sorted, no spaces)."""
        canonical = msgspec.json.encode(msgspec.to_builtins(self), order="sorted")
        return hashlib.sha256(canonical).hexdigest()


FEATURE_SCHEMA = FeatureSchema(
    version="3",
    features=(
        FeatureSpec("inflow_log10_yuan", "log10(1 + CNY)", "credits of the day summed, in yuan, log-scaled"),
        FeatureSpec("outflow_log10_yuan", "log10(1 + CNY)", "debits of the day summed, in yuan, log-scaled"),
        FeatureSpec("credits", "records", "credit transactions of the day"),
        FeatureSpec("debits", "records", "debit transactions of the day"),
        FeatureSpec(
            "distinct_payers",
            "accounts",
            "distinct known counterparties of credits (estimated beyond the sample)",
        ),
        FeatureSpec(
            "distinct_payees",
            "accounts",
            "distinct known counterparties of debits (estimated beyond the sample)",
        ),
        FeatureSpec(
            "unknown_counterparty_records", "records", "transactions whose counterparty is not an account"
        ),
        FeatureSpec("pass_through", "ratio", "debits / credits in yuan, capped at PASS_THROUGH_CAP"),
        FeatureSpec(
            "dwell_hours", "hours", "mean hours a credited yuan stays before a debit takes it (FIFO)"
        ),
        FeatureSpec("night_share", "fraction", "share of transactions booked 00:00-05:59 Beijing"),
        FeatureSpec("hour_entropy_bits", "bits", "Shannon entropy of transactions over the 24 Beijing hours"),
        FeatureSpec(
            "round_1k_share", "fraction", "share of transactions whose amount is a multiple of 1,000 yuan"
        ),
        FeatureSpec(
            "round_10k_share", "fraction", "share of transactions whose amount is a multiple of 10,000 yuan"
        ),
        FeatureSpec(
            "new_counterparty_share",
            "fraction",
            "share of the day's counterparties unseen in the history days; 0 without history",
        ),
        FeatureSpec(
            "inflow_growth_log2", "log2 ratio", "(credits + 1 yuan) against the trailing daily mean + 1 yuan"
        ),
        FeatureSpec(
            "person_inflow_2d_log10_yuan",
            "log10(1 + CNY)",
            "credits from customers' registered accounts over the day and the day before, log-scaled;"
            " unregistered payers count for nothing",
        ),
        FeatureSpec(
            "person_outflow_2d_log10_yuan",
            "log10(1 + CNY)",
            "debits to customers' registered accounts over the day and the day before, log-scaled",
        ),
        FeatureSpec(
            "person_passed_on_2d_log10_yuan",
            "log10(1 + CNY)",
            "the smaller of the two above: money taken from customers and sent to customers within"
            " the two days, log-scaled",
        ),
    ),
    parameters={
        "history_days": HISTORY_DAYS,
        "kept_days": KEPT_DAYS,
        "counterparty_sample": COUNTERPARTY_SAMPLE,
        "counterparty_hash": "blake2b-64 of the account id, person b'fw-cpty'",
        "night_hours": f"{NIGHT_HOURS.start}-{NIGHT_HOURS.stop - 1}",
        "pass_through_cap": PASS_THROUGH_CAP,
        "dwell_full_day_hours": DWELL_FULL_DAY_HOURS,
        "currency": "CNY",
        "day": "Beijing calendar day (UTC+8)",
        "person_flow_days": 2,
        "counterparty_kinds": "person: investor, borrower, other without institution; institution:"
        " customer_custody, payment_reserve, own_operating, related_party, other of an institution;"
        " unregistered: unknown, not counted",
    },
)
FEATURE_NAMES = FEATURE_SCHEMA.names
FEATURE_UNITS = FEATURE_SCHEMA.units
FEATURE_SCHEMA_HASH = FEATURE_SCHEMA.hash()
