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
    ("a barrier of a checkpoint aborted before it reached a task started an alignment "
     "there that could never complete: the channel stayed blocked and the job stuck",
     "of1.eNqNU9Fu4yAQ_BeercrOKVWVX4kitMVrhzMGtEDcKPK_d5cmJ7dqq8sTWXZnZmfwTZkzmikG63NSh5vqC8GrQ51yIFSHAVzCRvEt0gWcOrRP-0bN8KZN8KYQoc_q0HEp9NyuwNnRY68aRZjBylFus50xFO7ct0_t2qgBihO-423Dz-CN6tHBVWj4jMOAhsvcbp1eyGZk4Ml6BlUiEEYpZKARpW2G2B67k1pPrKdkqCsdT6IlcVOW_SBnnKNc7DZke9aU4IIPH2Qo4V18sn5i9LwEHc-QKqWdrR8F77WwSNKEJlDPky8NbwTeo9MGIhibrxXkr2Viui_mIKM3lbkTdTLLhqb8qESjP_eU6AL0WnysGKw3hxhcGK-iQgKJQOAcOptmZtyxkAtStgY_fMZ-lICGQAtQv_ExFDKy06f53cf_uWZS7KZxbX7G4gD-A0hi2sKwp-dfMf58i9H9jFET-wLSfbORtK0n8fLN639v9LmVn-TEBiYbfB1eAk2Sgdg94ZVN3T-i43P38ngwPJYmXO5fSorO1se2ru9O9hyb"),
    ("triggers of checkpoints 6 and 7 reached a source out of order, so it emitted barrier "
     "7 before 6; a downstream task aligning on 7 took the late barrier 6 as complete and "
     "snapshotted before a record it had not processed: a lost record on restore",
     "of1.eNqVUtuOmzAQ_Rc_IwTspVt-ZRVZs2ZIXBzbGptko4h_74xJ6KbVPpQnY4ZznasyBzRTDNbnpPqrGmaCD4c65UCo-kwzVoo_Ip3Aqb6pXyp1hE9tgjczEfqs-o6vwsDTCpzdexxUpQgzWDn2T5XK9ohh5smXpm6WSo0wO6F7vyrg2_ZH_fZaqcl6HlfnQBOSNgTpwEDrKzMvO6aZMxSh7zuhSBkoi2rIGY9RPjDbgA4ujFqoEpzw7u5OV7dvPEWsT_UjuIQrFhvWEQicQ2fTsWDxbbwNCX9CcdSx2GT9xGLzOeh4gISquLR-L3I-5nFkC4Qm0MDEzxXHDN6j0wYiGJsvJbVflnWTKGJEBxm9KcK75uHpRJ9AceopSwkt30Sjt19KLXN0AQYtYcuNuGf1wYX9RURJaw_22o5jOCFla3BNB4e9tDgGOgNJi7dKUpjJiMWH_7v1nU8Nk9svg0u1YR3WFm9Ao3Vi-C-gdgNq70DrYPO_SE_fIbVfkf71J2V-C_XHnYwtO8n10-ttqV9LSXVTwkw2-MIueyt9SPQTXlLJa9uI7ud9mWTJJjyXfeVjdFZW9XlZfgM_wCwj"),
    ("unaligned: an end of input in flight to one subtask made the consistent-cut check "
     "expect unfired windows on another subtask, whose window had fired",
     "of1.eNqNUtFuwjAM_Bc_V6iggSZ-ZUKVSV3ImiaRk1AQ6r_PLoOBpknrS53YvjufcwVzJNPHYH1OsL1CWxj3jpqUAxNsO3SJKpAs8QkdbOvFuoIBz40J3hRm8hm2S7kKrZRD8ejswVMLFTBltBpqPtuBQpHadb2opwo6LE4ZP3bSWzL6-4EpZeSsWjBnGqImVhW05PAy80t3whPdNWtTIqWpJbC-Fxl5DE08YiKYma0_KN6-dB1xw2QCtzdUc0TvyTUGIxqbL7PWTyvErFyC6DCTNzPzUtVprwyfst4IAkfTvNaU6AK2jU48Y4jeHGJw4XBRFWpeREbnyNk0COPqvYITcbaGdJ4rUHtQM7vAI7Ja2Vsv80EKhY3O9NK_up2H2YBinwqn6oElZhx_gEb5hfFvoNUd6FZYPyP9VqWe_0OTlk07dePsm8d72NT6qdNiQbLBzysYA_fqohrW00Vs2dzNl_jteeM9jd-rStHZ-bVM0xc2SO8O"),
    ("unaligned: after a restore from a snapshot taken past the end of input, the re-sent "
     "end of input was in flight while the window had fired long before",
     "of1.eNqNUltu4zAMvAu_jcDp9rHNVYLAYGTa0VqWBEqKGwS-e0k7DVIsCtQ_lqjhcDjkFcyJzBCD9TnB7gptYTw6alIOTLDr0CWqQF6Jz-hgV29eKhjxozHBm8JMPsNuK6HQChyKR2d7Ty1UwJTR6lHfsx0pFMG-1Jt6rqDD4rTi_goo0efN-1sFg_WCBsOYTkKQkXuSR0ihsKF9fYD5IKVKxkXt_qBFksCySsecaYz68KeClhxeFrlSLOGZvlrUpESqqpaD9YPw5yk08YSJYBFqfa98x9J1xA2TCdxK5t9KzELvyTUGIxqbL0tr_6wUZq0ljA4zebNUfq2_fVsVq1RiXcoK0Eg0zUOKREp0AdtG_VooRX4OMbjQX1SUWh-R0TlyNo0i4El0nYmzNbT6SW2vo-gCT8g6iJutq4ty_56_3sfFj2IfgHN15zqtA7kRMbXlV0QrsP6ZaZJfmH5mevpiWoHbR6b_-9Nh_qI7hc0H9fXDN_e9XKelIxQzkw1-SZ4CDzoPtX6gS1qC9414f1ylgabbDqTorK7adp4_ASasGAU"),
    ("a task that learnt of an abort before the barrier came dropped the barrier; the "
     "sink's notify-aborted was lost, so it kept three channels blocked for that barrier "
     "and backpressure stalled every later checkpoint: now a cancel marker goes downstream "
     "(failed checkpoints tolerated, so that the job does not fail over)",
     "of1.eNp1kutu4yAQhd-F31ZlJ221m1eJIjSBccIaA-KS1Ir87p0hN2d3618eOJz5OMNFqCOqIXjjchKbi9Alwt6iTNlHFJsebMJG0C7GE1ixad8-GjHCl1TeqRIjuiw2HS15TXIB1hwcatGIiBkM__JuNiP6QsrP9q2l0lu8tunBWNTyBaJr23ZuRA_Fcrm9LBgJoBEaLUyMQv_Y96hoWVifkNoOxlFL4Xw2_UT1iCnBoaI5rjPEA7I-GTds252YdyQqGWrr7Y7BE4kyhwE54xh4Y7Xo-kFwCU545-VDiRB1sXirkO9NdNyEeuWzl-EIFZCiMO7A7vtC7FFGVD5q8llTE3UE59BKBQGUyVNN748hjni7sIWMTlWQjmH5MA0j5ftKUPJVU4L1oCXPoHrMPIDgrT9MjMHDDBDBWrQmjdRx9asRJ4zZKLzmj7om2Pt4hqifKSdfouJLvZxfX-uxJlDMQjg3Dy9K4_g06olYjhD-tuoeVqu71V3aLt32kW6ogEJ4WP7H7f1fMFJ1P2PV8f2I9Lwdy-Yd5_rl5OKt88czozCT8a4ePvs48Dw4-gGnVPN6vIHfq-XrGfB8m3oK1vBbW8_zN90nNbU"),
    ("unaligned: an end of input in flight at an unaligned snapshot was replayed on restore "
     "as channel state, ending the channel before its restored sender (now holding the "
     "split another subtask had) sent the rest of that split: r2 arrived after the sink's "
     "final commit and was aborted (no_loss on the timeline restored from checkpoint 1)",
     "of1.eNqFktFuIyEMRf-F51E16barKr-yqpALnoQdDyADSUfR_PvaM22aKA_LEzb25frAxbgjujGnEGsx-4vxjeGD0JaaGM1-ACrYGTlFPgGZff_02pkJPq1L0TVmjNXsd5JKXspNi0DhENGbzjBWCLrV8xomTE1qX_unXsJEuF00QCD09s5Gv3RmgEa6__Mu4q1C_A4YSwWuahZqxSnrwXNnPBLMq0HpLnDCbzVtKqLvG-FXhOpKbJQQR3Fdz8nmIxQ0q9EQD6r-0YYB2TK6xL6sU7gjxIhkHWRwoc5r8m8QG6w3S0BQMbr5K9p6hVVRSjo4Z2fva1qmBN4qIM3o7DXlROkwqwtlnYGBCCmUSWSe3zpzQq7BoU53MegPyn5IfAZW8mOIMp8pqbHTme76X7Z4WgG0cFO4dFctgXH8EWJh9yi0exTaCvtbpUdXyvz_UmvZ8q40PqO9fp_fvS4lKQhKSHFtPicelaICG3HeHuv6cL9uX3zE84pZtpmC_o_dsvwDkpz_xQ"),
    ("a completed stop-with-savepoint aborted an older checkpoint as subsumed, and the freed "
     "slot triggered a final checkpoint: the sources took that newer trigger for a lost "
     "abort of the stop and failed the job (no fault; nothing may be triggered once a "
     "stop-with-savepoint completed)",
     "of1.eNqNUu1u2zAMfBf9NgK7W7fBr1IUAivRiWZZEigpaVD43UfKSBaj2Id_WeTpdHfkhzInNHOKLpSsxg9lK8GbR51LJFTjBD5jp7iLdAavxv7w3KkF3rWJwVQiDEWNA5eiZbiCoj1CLpq7qDpFWMAFtA1T3IKxMv65P_R8jB63xyZwHq3eSenXTk1Qvfy_vPIDtUC4HQhzASoiGErBJUnjS6cserg2kXw7wxlvbC8CZBGH4YlRxJru3oSLveoEBN6jd3lRY6jeM0OJSY2FKq78aGZ9tnrcJGQUV2wjuzCz83KJOp0gi2s26sJR1L3VaULShCaSZR0_Og4cQkCvDSQwrlxbND8d2yBR_r3ffdzzUDCYZmsQuULF8edyqySj95iafASrJW-pSJTsJPp4vIooGd_O7fDEus5IxRncwkJ7lHFOkS5Ali3NLrBdlWOlNtjd_a_beWl5VPcAXLs_cy2Q_oOIUf0jDUd8-s1BPJHPeobPNBtw-KugNsl_UzXY-iqhvgd9X-pvbV6y2JxkdjG0y5dIswxDcp_xmlvxvg794x7NeGnT4t_knWztsK6_AGwAMOg"),
]


@pytest.mark.parametrize("token", [t for _, t in REGRESSIONS],
                         ids=[w.split(":")[0] for w, _ in REGRESSIONS])
def test_regression(token: str) -> None:
    result = onceflow.run(onceflow.decode_token(token))
    onceflow.check(result)
    # none of them has a fault that could end the job otherwise
    assert result.status == "finished", result.status
