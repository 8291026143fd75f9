"""Scenarios that once raised a false alarm or exposed a model bug, replayed by token."""

from __future__ import annotations

import pytest

import onceflow

#: (what went wrong, token)
REGRESSIONS = [
    ("unaligned: an end-of-input taken after the first barrier was not kept as channel "
     "state, so the consistent-cut check saw unflushed windows in an ended snapshot",
     "of1.eNp1UttuwjAM_Rc_V6gwMSZ-ZUKVSV3IGpLISSgI9d9nlxV20frSXHwuPvENzJFMH4P1OcH2Bm1h3DtqUg5MsO3QJapAbonP6GBbL9YVnPDSmOBNYSafYbuUo9BKORSPzh48tVABU0arS73P9kShSO26XtRjBR0Wp4rvO8GWjH7eMKWMnNUL5kynqBerClpyeJ30BZ3wTLNnBSVSmRdZWN-LjTyEJh4xEUzK1h-Ub1-6jrhhMoFbQb5V0j16T64xGNHYfJ28flgRZtWqK3CYyZtJeanuFCvNpzyfRNP8rCnRBWwb7XjiEL85xODC4aouNLyIjM6Rs-kkiisxcibO1pD2cwNqDxpmF3hA1ih766U_SKGw0Z5-4Ff3vazEbrHfCsfqwSVhHJ9Eg_zC8Jto-SBazUT3wvo7019Xmvm_VE9PWjbuNI2Lbx7z8Frrp0lLBMkGP4GHwL2mqIH1dL2PwOPhNpv5yQWWehq-5jJFZ6dxGcdPMSnvTw"),
    ("a job stopped with a savepoint before its end of input: the open window's share of a "
     "key's total depends on the order a rebalance left open, so the total is not invariant",
     "of1.eNqNUu1OwzAMfJf8rlA7BEJ9FYQiL3W30DSJnGRlQn137OyDDYRE_7SNz-e7cz6V2aOZYrA-J9V_qqEQbB3qlAOh6kdwCRvFVaQDONW3D0-NmuFDm-BNIUKfVd_xURgYrsDZncdBNYowg5VPqWY7YyiMfGof2rVRIxQn817fuLNk8JcfwpSBsiiBnHGOUtg0akAHxzqduxMc8KL4VYBSaBlEPPGqWajYg45A4Bw6m2bV--IcE-QQVZ-p4MozE4pK7k_WT-whL0HHPSRUVbj1O5GzLeOIpAlNoIEHvzQcHXiPThuIYGw-VqvvlnXTWZGDjN5U4Z0okl5OLuXLSTT6HlOiCzBoCaxysF0WG1zYHUWFJH9nqNuwkANStgZPceCwk02MgRYg2cRkPftTKRQy4um-__Q_1wCKvQGuzZWLcAsOfO0-s80Qf1JtflMxqr0l4lT33xwLv8Lyt6LNheYE7G6ZftuT5f3DnMDWN4n1w-vrvXxu5ZGVcZbJBl-bl0CTrEOSn_CY6uH1BjzeXp0Jl_POU3RWbma3rl8D5RtF"),
]


@pytest.mark.parametrize("token", [t for _, t in REGRESSIONS],
                         ids=[w.split(":")[0] for w, _ in REGRESSIONS])
def test_regression(token: str) -> None:
    onceflow.check(onceflow.run(onceflow.decode_token(token)))
