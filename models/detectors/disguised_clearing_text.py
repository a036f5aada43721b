"""What a `disguised_clearing` finding says of a day of mirrored payments: the metrics and the
Chinese and English sentences, from the signal ``disguised_clearing.decide`` returned
(models/detectors/disguised_clearing.py holds the rule)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from models.detectors.common import beijing_date, fraction_of
from models.detectors.context import DetectContext
from models.detectors.wording import (
    cite_en,
    cite_zh,
    mask,
    money,
    percent,
    role_en,
    role_zh,
    yuan_en,
    yuan_zh,
)

if TYPE_CHECKING:
    from models.detectors.disguised_clearing import DisguisedClearingSignal

RULE = "二(五)"


def metrics(
    signal: DisguisedClearingSignal,
    entry: dict[str, Any],
    credit_accounts: list[tuple[str, int]],
    debit_accounts: list[tuple[str, int]],
    credit_banks: dict[str, int],
    debit_banks: dict[str, int],
) -> dict[str, Any]:
    """The figures of a day that fires (``entry``: the day's figures), with the mirrored money per
    account and per bank on both sides."""
    return {
        "day": beijing_date(signal.day),
        "customers": signal.customers,
        "customers_capped": signal.customers_capped,
        "late": entry.get("ln", 0) > 0,
        "mirrored_credits": money(signal.mirrored_credit_cents),
        "mirrored_credit_count": signal.mirrored_credit_count,
        "mirrored_debits": money(signal.mirrored_debit_cents),
        "mirrored_debit_count": signal.mirrored_debit_count,
        "credit_banks": {bank: money(c) for bank, c in credit_banks.items()},
        "debit_banks": {bank: money(c) for bank, c in debit_banks.items()},
        "credit_accounts": {a: money(c) for a, c in credit_accounts},
        "debit_accounts": {a: money(c) for a, c in debit_accounts},
    }


def _lag_text(seconds: int) -> tuple[str, str]:
    if seconds % 60 == 0:
        return f"{seconds // 60}分钟", f"{seconds // 60} minute(s)"
    return f"{seconds}秒", f"{seconds} second(s)"


def sentences(
    signal: DisguisedClearingSignal,
    ctx: DetectContext,
    cfg: dict[str, Any],
    main: str,
    credit_account_count: int,
    credit_banks: dict[str, int],
    debit_banks: dict[str, int],
) -> tuple[str, str]:
    """The Chinese and English sentences of a day that fires; ``main``: its largest account."""
    lag = max(0, int(cfg["max_lag_seconds"]))
    tol = fraction_of(cfg["amount_tolerance"])
    date = beijing_date(signal.day)
    role = ctx.role(main)
    lag_zh, lag_en = _lag_text(lag)
    customers = signal.customers
    credit_count, credit_cents = signal.mirrored_credit_count, signal.mirrored_credit_cents
    others_zh = f"等{credit_account_count}个账户" if credit_account_count > 1 else ""
    others_en = f" and {credit_account_count - 1} other account(s)" if credit_account_count > 1 else ""
    who_zh = f"至少{customers}" if signal.customers_capped else str(customers)
    who_en = f"at least {customers}" if signal.customers_capped else str(customers)
    same_zh = "相同金额" if tol <= 0 else f"金额相差不超过{percent(tol)}"
    same_en = "the same amount" if tol <= 0 else f"an amount within {percent(tol)}"
    banks_zh = "、".join(credit_banks)
    banks_en = ", ".join(credit_banks)
    if signal.mirrored_debit_count:
        debit_count, debit_cents = signal.mirrored_debit_count, signal.mirrored_debit_cents
        out_zh = (
            f"（当日在{'、'.join(debit_banks)}银行付出此类款项{debit_count}笔、合计{yuan_zh(debit_cents)}）"
        )
        out_en = (
            f" ({debit_count} such payment(s) totalling {yuan_en(debit_cents)} on that day at bank(s) "
            f"{', '.join(debit_banks)})"
        )
    else:
        out_zh = out_en = ""
    zh = (
        f"{date}（北京时间），该支付机构在{banks_zh}银行的{role_zh(role)}{mask(main)}{others_zh}收到"
        f"{who_zh}个客户的{credit_count}笔付款、合计{yuan_zh(credit_cents)}，每一笔都在{lag_zh}内由该机构"
        f"在另一家银行的账户向外付出{same_zh}的款项{out_zh}；资金未经人民银行跨行清算系统或合法清算机构，"
        f"而经该机构在多家银行的账户一收一付，涉嫌连接多家银行系统变相开展跨行清算{cite_zh(RULE)}。"
    )
    en = (
        f"On {date} (Beijing time) the payment institution's {role_en(role)} {mask(main)}{others_en} "
        f"at bank(s) {banks_en} received {credit_count} payment(s) totalling {yuan_en(credit_cents)} "
        f"from {who_en} customer(s), each mirrored within {lag_en} by a payment of {same_en} from one "
        f"of its accounts at another bank{out_en}: money moved between banks through the "
        f"institution's own accounts instead of licensed interbank clearing, suspected disguised "
        f"interbank clearing {cite_en(RULE)}."
    )
    return zh, en
