"""Alpha158: 9 k-bar, 4 price and 145 rolling factors (SPEC.md §3) with Qlib's knobs."""

from __future__ import annotations

from collections.abc import Sequence

EPS = "1e-12"
C_DELTA = "$close-Ref($close, 1)"
V_DELTA = "$volume-Ref($volume, 1)"
C_RET_V = "Abs($close/Ref($close, 1)-1)*$volume"

KBAR: dict[str, str] = {
    "KMID": "($close-$open)/$open",
    "KLEN": "($high-$low)/$open",
    "KMID2": f"($close-$open)/($high-$low+{EPS})",
    "KUP": "($high-Greater($open, $close))/$open",
    "KUP2": f"($high-Greater($open, $close))/($high-$low+{EPS})",
    "KLOW": "(Less($open, $close)-$low)/$open",
    "KLOW2": f"(Less($open, $close)-$low)/($high-$low+{EPS})",
    "KSFT": "(2*$close-$high-$low)/$open",
    "KSFT2": f"(2*$close-$high-$low)/($high-$low+{EPS})",
}

#: Rolling families in Alpha158's column order: config key → (column prefix, template with {d}).
ROLLING: dict[str, tuple[str, str]] = {
    "ROC": ("ROC", "Ref($close, {d})/$close"),
    "MA": ("MA", "Mean($close, {d})/$close"),
    "STD": ("STD", "Std($close, {d})/$close"),
    "BETA": ("BETA", "Slope($close, {d})/$close"),
    "RSQR": ("RSQR", "Rsquare($close, {d})"),
    "RESI": ("RESI", "Resi($close, {d})/$close"),
    "MAX": ("MAX", "Max($high, {d})/$close"),
    "LOW": ("MIN", "Min($low, {d})/$close"),
    "QTLU": ("QTLU", "Quantile($close, {d}, 0.8)/$close"),
    "QTLD": ("QTLD", "Quantile($close, {d}, 0.2)/$close"),
    "RANK": ("RANK", "Rank($close, {d})"),
    "RSV": ("RSV", f"($close-Min($low, {{d}}))/(Max($high, {{d}})-Min($low, {{d}})+{EPS})"),
    "IMAX": ("IMAX", "IdxMax($high, {d})/{d}"),
    "IMIN": ("IMIN", "IdxMin($low, {d})/{d}"),
    "IMXD": ("IMXD", "(IdxMax($high, {d})-IdxMin($low, {d}))/{d}"),
    "CORR": ("CORR", "Corr($close, Log($volume+1), {d})"),
    "CORD": ("CORD", "Corr($close/Ref($close, 1), Log($volume/Ref($volume, 1)+1), {d})"),
    "CNTP": ("CNTP", "Mean($close>Ref($close, 1), {d})"),
    "CNTN": ("CNTN", "Mean($close<Ref($close, 1), {d})"),
    "CNTD": ("CNTD", "Mean($close>Ref($close, 1), {d})-Mean($close<Ref($close, 1), {d})"),
    "SUMP": ("SUMP", f"Sum(Greater({C_DELTA}, 0), {{d}})/(Sum(Abs({C_DELTA}), {{d}})+{EPS})"),
    "SUMN": (
        "SUMN",
        f"Sum(Greater(Ref($close, 1)-$close, 0), {{d}})/(Sum(Abs({C_DELTA}), {{d}})+{EPS})",
    ),
    "SUMD": (
        "SUMD",
        f"(Sum(Greater({C_DELTA}, 0), {{d}})-Sum(Greater(Ref($close, 1)-$close, 0), {{d}}))"
        f"/(Sum(Abs({C_DELTA}), {{d}})+{EPS})",
    ),
    "VMA": ("VMA", f"Mean($volume, {{d}})/($volume+{EPS})"),
    "VSTD": ("VSTD", f"Std($volume, {{d}})/($volume+{EPS})"),
    "WVMA": ("WVMA", f"Std({C_RET_V}, {{d}})/(Mean({C_RET_V}, {{d}})+{EPS})"),
    "VSUMP": ("VSUMP", f"Sum(Greater({V_DELTA}, 0), {{d}})/(Sum(Abs({V_DELTA}), {{d}})+{EPS})"),
    "VSUMN": (
        "VSUMN",
        f"Sum(Greater(Ref($volume, 1)-$volume, 0), {{d}})/(Sum(Abs({V_DELTA}), {{d}})+{EPS})",
    ),
    "VSUMD": (
        "VSUMD",
        f"(Sum(Greater({V_DELTA}, 0), {{d}})-Sum(Greater(Ref($volume, 1)-$volume, 0), {{d}}))"
        f"/(Sum(Abs({V_DELTA}), {{d}})+{EPS})",
    ),
}

DEFAULT_WINDOWS = (5, 10, 20, 30, 60)
DEFAULT_PRICE_FIELDS = ("OPEN", "HIGH", "LOW", "VWAP")


def alpha158(
    *,
    kbar: bool = True,
    price_fields: Sequence[str] | None = DEFAULT_PRICE_FIELDS,
    price_windows: Sequence[int] = (0,),
    volume_windows: Sequence[int] | None = None,
    windows: Sequence[int] = DEFAULT_WINDOWS,
    include: Sequence[str] | None = None,
    exclude: Sequence[str] = (),
) -> dict[str, str]:
    """Column name → expression of Alpha158 (defaults: Qlib's 158 columns, in Qlib's order).

    Knobs as in Qlib's Alpha158 config: ``kbar`` on/off; ``price_fields``/``price_windows``
    (``OPEN0`` = ``$open/$close``, ``OPEN1`` = ``Ref($open, 1)/$close``; None turns them off);
    ``volume_windows`` (off by default); rolling ``windows`` and the families to ``include`` /
    ``exclude`` by config key (``LOW`` is the key of the ``MIN`` columns).

    >>> len(alpha158()), list(alpha158())[:2]
    (158, ['KMID', 'KLEN'])
    """
    unknown = {*(include or ()), *exclude} - set(ROLLING)
    if unknown:
        raise ValueError(
            f"unknown Alpha158 rolling families {sorted(unknown)}; known: {list(ROLLING)}"
        )
    out: dict[str, str] = dict(KBAR) if kbar else {}
    for field in price_fields or ():
        f = field.lower()
        for d in price_windows:
            out[f"{field.upper()}{d}"] = f"${f}/$close" if d == 0 else f"Ref(${f}, {d})/$close"
    for d in volume_windows or ():
        vol = f"$volume/($volume+{EPS})" if d == 0 else f"Ref($volume, {d})/($volume+{EPS})"
        out[f"VOLUME{d}"] = vol
    for key, (prefix, template) in ROLLING.items():
        if (include is not None and key not in include) or key in exclude:
            continue
        for d in windows:
            out[f"{prefix}{d}"] = template.replace("{d}", str(d))
    return out
