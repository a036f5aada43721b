"""What an `anomaly` finding says of the features that made its day unusual: the metrics (each
named feature with the account's value, its own usual range and its role's) and the Chinese and
English sentences. Figures are shown in the units a desk reads: yuan rather than log10 yuan,
percentages rather than fractions, a multiple rather than a log2 ratio; the metrics keep the
model's own units."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from models.detectors.wording import cite_en, cite_zh, money, role_en, role_zh
from models.features import FEATURE_NAMES, FEATURE_UNITS, FeatureVector, OwnUsualRanges, UsualRange
from models.features.state import DayPartial
from models.features.window import feature_values

if TYPE_CHECKING:
    from models.anomaly_serving import AnomalyModels
    from models.detectors.anomaly import AnomalySignal

RULE = "三(三)"

LABEL_ZH = {
    "inflow_log10_yuan": "当日转入金额",
    "outflow_log10_yuan": "当日转出金额",
    "credits": "转入笔数",
    "debits": "转出笔数",
    "distinct_payers": "付款方账户数",
    "distinct_payees": "收款方账户数",
    "unknown_counterparty_records": "无对手账户的交易笔数",
    "pass_through": "转出与转入金额之比",
    "dwell_hours": "资金平均停留时间",
    "night_share": "夜间（0至6时）交易占比",
    "hour_entropy_bits": "交易时段分散度",
    "round_1k_share": "千元整数金额交易占比",
    "round_10k_share": "万元整数金额交易占比",
    "new_counterparty_share": "新对手方占比",
    "inflow_growth_log2": "转入金额与近期日均之比",
    "person_inflow_2d_log10_yuan": "两日内来自客户登记账户的转入金额",
    "person_outflow_2d_log10_yuan": "两日内转给客户登记账户的金额",
    "person_passed_on_2d_log10_yuan": "两日内自客户转入又转给客户的金额",
}
LABEL_EN = {
    "inflow_log10_yuan": "money in",
    "outflow_log10_yuan": "money out",
    "credits": "credits",
    "debits": "debits",
    "distinct_payers": "distinct payers",
    "distinct_payees": "distinct payees",
    "unknown_counterparty_records": "transactions without a counterparty account",
    "pass_through": "money out per yuan in",
    "dwell_hours": "mean time money stayed",
    "night_share": "share booked at night (00:00-05:59)",
    "hour_entropy_bits": "spread over the hours of the day",
    "round_1k_share": "share of whole thousands of yuan",
    "round_10k_share": "share of whole ten-thousands of yuan",
    "new_counterparty_share": "share of new counterparties",
    "inflow_growth_log2": "money in against its recent daily mean",
    "person_inflow_2d_log10_yuan": "money in from customers' accounts over two days",
    "person_outflow_2d_log10_yuan": "money out to customers' accounts over two days",
    "person_passed_on_2d_log10_yuan": "money from customers passed on to customers within two days",
}
assert set(LABEL_ZH) == set(LABEL_EN) == set(FEATURE_NAMES), "a label for every feature"


def shown(feature: str, value: float, zh: bool) -> str:
    """A feature's value as a desk reads it."""
    if feature.endswith("_log10_yuan"):
        yuan = max(0.0, 10**value - 1)
        return f"{yuan:,.0f} 元" if zh else f"CNY {yuan:,.0f}"
    if feature.endswith("_share"):
        return f"{value * 100:.0f}%"
    if feature == "inflow_growth_log2":
        return f"{2**value:.2f} 倍" if zh else f"{2**value:.2f}x"
    if feature == "dwell_hours":
        return f"{value:.1f} 小时" if zh else f"{value:.1f} h"
    if feature == "hour_entropy_bits":
        return f"{value:.2f} 比特" if zh else f"{value:.2f} bits"
    if feature == "pass_through":
        return f"{value:.2f}"
    return f"{value:,.0f}"  # records and accounts (a distinct count beyond the sample is an estimate)


def _figure(value: float) -> float:
    return round(value, 4) if math.isfinite(value) else value


def _range(usual: UsualRange | None) -> dict[str, float] | None:
    return None if usual is None else {"low": _figure(usual.low), "high": _figure(usual.high)}


def feature_metrics(
    vector: FeatureVector,
    named: Sequence[tuple[int, float]],
    own: OwnUsualRanges | None,
    role_usual: Sequence[UsualRange],
) -> list[dict[str, Any]]:
    """Each named feature (index, score drop) with the account's value, its own usual range
    (None until it has three history days with records) and its role's, in the model's units."""
    values = feature_values(vector)
    return [
        {
            "feature": FEATURE_NAMES[j],
            "unit": FEATURE_UNITS[j],
            "value": _figure(values[j]),
            "own_usual": _range(own.ranges[j] if own is not None else None),
            "role_usual": _range(role_usual[j]),
            "score_drop": round(drop, 6),
        }
        for j, drop in named
    ]


def _span(feature: str, usual: dict[str, float], zh: bool) -> str:
    low, high = shown(feature, usual["low"], zh), shown(feature, usual["high"], zh)
    return f"{low}至{high}" if zh else f"{low} to {high}"


def _part_zh(item: dict[str, Any], role: str | None) -> str:
    feature, own = item["feature"], item["own_usual"]
    role_range = f"{role_zh(role)}通常为{_span(feature, item['role_usual'], True)}"
    if own is None:
        own_range = "本账户有交易的历史天数不足3天，尚无自身通常范围"
    else:
        own_range = f"本账户通常为{_span(feature, own, True)}"
    return f"{LABEL_ZH[feature]}为{shown(feature, item['value'], True)}（{own_range}；{role_range}）"


def _part_en(item: dict[str, Any], role: str | None) -> str:
    feature, own = item["feature"], item["own_usual"]
    role_range = f"{role_en(role)}s usually {_span(feature, item['role_usual'], False)}"
    if own is None:
        own_range = "no usual range of its own yet: fewer than 3 history days with transactions"
    else:
        own_range = f"its own usual {_span(feature, own, False)}"
    return f"{LABEL_EN[feature]} {shown(feature, item['value'], False)} ({own_range}; {role_range})"


def sentences(
    role: str | None,
    score: float,
    threshold: float,
    quantile: str,
    artefact_id: str,
    named: Sequence[dict[str, Any]],
    masked: str,
    date: str,
) -> tuple[str, str]:
    """The Chinese and the English explanation; the account appears masked only."""
    percentile = quantile.removeprefix("p")
    zh = (
        f"{role_zh(role)}{masked}在{date}的资金往来明显不同于其通常情况（异常评分{score:.3f}，"
        f"高于{role_zh(role)}模型的阈值{threshold:.3f}，即训练期同类账户日评分的第{percentile}百分位；"
        f"模型{artefact_id}）。差异最大的特征："
        + "；".join(_part_zh(item, role) for item in named)
        + f"。此为模型识别的异常，需人工核实，并非已认定的违规{cite_zh(RULE)}。"
    )
    en = (
        f"On {date} the {role_en(role)} {masked} moved money unlike its usual days (anomaly score "
        f"{score:.3f}, above {threshold:.3f}, the {quantile} of its role's training days; model "
        f"{artefact_id}). What differed most: "
        + "; ".join(_part_en(item, role) for item in named)
        + f". A learned-model signal for a desk to verify, not an established violation {cite_en(RULE)}."
    )
    return zh, en


def day_metrics(
    signal: AnomalySignal,
    date: str,
    cfg: dict[str, Any],
    model: AnomalyModels,
    own: OwnUsualRanges | None,
    partial: DayPartial | None,
    named: list[dict[str, Any]],
) -> dict[str, Any]:
    """A raised day's metrics: its score against the role's threshold and the model that gave
    it, how much history it was judged on, the day's own figures and the named features."""
    return {
        "day": date,
        "role": signal.role,
        "score": round(signal.score, 4),
        "threshold": round(signal.threshold, 4),
        "threshold_quantile": str(cfg["threshold_quantile"]),
        "model_artefact": model.artefact_id,
        "model_digest": model.digest,
        "history_days": signal.vector.history_days,
        "own_history_days": own.days if own is not None else 0,
        "transactions": partial.transactions if partial else 0,
        "inflow": money(partial.inflow_cents if partial else 0),
        "outflow": money(partial.outflow_cents if partial else 0),
        "features": named,
    }
