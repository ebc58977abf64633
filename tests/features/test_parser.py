from __future__ import annotations

import pytest

from alstm.features.parser import Call, Const, ExpressionError, Field, parse


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("$close", "$close"),
        ("Mean($close, 5) / $close", "Div(Mean($close,5),$close)"),
        ("Ref($close, -2) / Ref($close, -1) - 1", "Sub(Div(Ref($close,-2),Ref($close,-1)),1)"),
        ("($high-$low)/($open+1e-12)", "Div(Sub($high,$low),Add($open,1e-12))"),
        ("2*$close-$high-$low", "Sub(Sub(Mul(2,$close),$high),$low)"),
        ("-$close", "Sub(0,$close)"),
        ("--$close", "Sub(0,Sub(0,$close))"),
        ("+$close", "$close"),
        ("-5", "-5"),
        ("1 + 2 * 3", "Add(1,Mul(2,3))"),
        ("(1 + 2) * 3", "Mul(Add(1,2),3)"),
        ("$a / $b / $c", "Div(Div($a,$b),$c)"),
        (
            "($close > 1) & ($open < 2) | ($low >= 0)",
            "Or(And(Gt($close,1),Lt($open,2)),Ge($low,0))",
        ),
        # As in Python: & binds tighter than >, so this compares $close with (1 & $open).
        ("$close > 1 & $open", "Gt($close,And(1,$open))"),
        ("Quantile($close, 5, 0.8)", "Quantile($close,5,0.8)"),
        ("If($close>$open, 1, -1)", "If(Gt($close,$open),1,-1)"),
        ("Mean($close>Ref($close,1),5)", "Mean(Gt($close,Ref($close,1)),5)"),
        ("  Abs( $close )  ", "Abs($close)"),
        ("$close != $open", "Ne($close,$open)"),
        ("1.5e-3", "0.0015"),
        (".5", "0.5"),
    ],
)
def test_parse_keys(text: str, key: str) -> None:
    assert parse(text).key == key


def test_node_types() -> None:
    node = parse("Mean($close, 5)")
    assert isinstance(node, Call) and node.op == "Mean"
    assert isinstance(node.args[0], Field) and node.args[0].name == "close"
    assert isinstance(node.args[1], Const) and node.args[1].value == 5
    assert isinstance(parse("5").value, int)  # type: ignore[attr-defined]
    assert isinstance(parse("5.0").value, float)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("text", "message", "pos"),
    [
        ("Mean($close, 5", "expected ')', found end of expression", 14),
        ("Mean($close 5)", "expected ')', found '5'", 12),
        ("$close # 2", "unexpected character '#'", 7),
        ("$close +", "expression ends too early", 8),
        ("", "empty expression", 0),
        ("$close )", "unexpected ')'", 7),
        ("$a > $b > $c", "chained comparison", 8),
        ("Mean", "expected '('", 4),
    ],
)
def test_parse_errors_point_at_position(text: str, message: str, pos: int) -> None:
    with pytest.raises(ExpressionError) as info:
        parse(text)
    assert message in str(info.value)
    if text:
        assert f"(position {pos})" in str(info.value)
