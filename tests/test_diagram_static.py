"""The HTML diagram read as a static image: a 1600x1000 screenshot in headless Chromium
shows the legend whole; offending records ring their marks instead of covering them;
savepoints are drawn apart from checkpoints; transaction ids are printed on their marks."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import onceflow
from onceflow.report import violating_timeline, write_html

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


#: a savepoint's commit replayed after a failover (mutant savepoint-commits): savepoints,
#: checkpoints, commits, aborts and offending records in one diagram
TOKEN = ("of1.eNqNU-2O4jAMfBf_zqFCF263r4JQZFIXck2TKh-wCPHuZ7ccgr1b6fiVkvF4ZuxcwRzJ9GOwPidortCWiHtHOuUQCZocCyngS4ondNC8LyoFA35qE7wpMZLP0Kz4r9AyGtDZg6cWFETKaOXY1AqyHSgURi6rSghycDS36dA6avWLiOqmoMPi5Ly9AkrderFaK-itZ0IwIcTWemSJ2kRMR7ipO-7nhKOuI5Mn5DDYPHUpbOfBMLubhXGX-kv99312bLVknHRuIeGJJtU_5kYJduI8ZYxZwsScaRgFy6QtObxA87EQf4_KJ49T6zZybNB06BLNXKxUjxjROXI2DdD44pwSC-MdJ6oSR9gWx0PY1vJJEv26Xm_4bH3PbvI56PGI6e7b-oNI3BfOKupIhr2ymDfFG4Hek9MGRzQ2s-algl-WvURR-Va9_PjOYSZvLpOF18uVWBBm3pfEHnn6jI-j0Y-aarH5i7CMLmCrZTo8nCkwdhtcOFxEs-zfSyLL1buCE8VsDc2BUnuQfexCPGNsnwYfSjSSwEt9PX_ziZez2CegLMZ3XAOO_0HEqOqZJtIeHXrzvI0yoC9My39IEthtJ2F8ev14U3N88qw4gWSDn4rPIfYSouTV04VT2fyZhSx8_ViRzfsHr13q6SyzkOPoZJP5Udx-A1ycVWw")


def _violating() -> tuple[onceflow.RunResult, onceflow.Violation]:
    scenario = onceflow.decode_token(TOKEN)
    assert scenario.savepoints
    result = onceflow.run(scenario)
    with pytest.raises(onceflow.Violation) as info:
        onceflow.check(result, deterministic=False)
    return result, info.value


def _figure(path: Path) -> dict:
    import json

    text = path.read_text()
    # plotly embeds the figure as Plotly.newPlot(id, data, layout, config)
    m = re.search(r'Plotly\.newPlot\(\s*"[^"]+",\s*(\[.*?\]),\s*(\{.*?\}),\s*\{"responsive"', text,
                  re.S)
    assert m, "no figure in the page"
    return {"data": json.loads(m[1]), "layout": json.loads(m[2])}


def test_marks_stay_visible_and_savepoints_and_transactions_are_told_apart(tmp_path: Path) -> None:
    result, violation = _violating()
    out = write_html(violating_timeline(result, violation.finding), tmp_path / "d.html",
                     violation.finding)
    fig = _figure(out)
    by_name = {t["name"]: t for t in fig["data"]}
    offending = next(t for n, t in by_name.items() if n.startswith("offending records"))
    # a ring, not a disc: the commit/abort mark under it shows through
    assert offending["marker"]["symbol"].endswith("-open")
    assert any(n.startswith("savepoint") for n in by_name), sorted(by_name)
    commits = by_name["commit"]
    assert "text" in commits["mode"] and any(commits["text"]), commits["mode"]
    assert fig["layout"]["legend"]["orientation"] == "h"


def test_the_legend_is_inside_a_1600x1000_screenshot(tmp_path: Path) -> None:
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing: .ci/run installs Debian's chromium")
        pytest.skip("needs Debian's chromium (apt-get install chromium; .ci/run installs it)")
    result, violation = _violating()
    out = write_html(violating_timeline(result, violation.finding), tmp_path / "d.html",
                     violation.finding)
    dom = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1600,1000",
         "--virtual-time-budget=10000", "--dump-dom", out.as_uri()],
        capture_output=True, text=True, timeout=120).stdout
    legend = re.search(r'<g class="legend"[^>]*transform="translate\(([\d.]+),\s*([\d.]+)\)"', dom)
    assert legend, dom[:500]
    x, y = float(legend[1]), float(legend[2])
    bg = re.search(r'<g class="legend".*?<rect class="bg"[^>]*?width="([\d.]+)"[^>]*?height="([\d.]+)"',
                   dom, re.S)
    assert bg
    width, height = float(bg[1]), float(bg[2])
    assert 0 <= x and x + width <= 1600 and 0 <= y and y + height <= 1000, (x, y, width, height)
    png = tmp_path / "d.png"
    subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                    "--window-size=1600,1000", "--virtual-time-budget=10000",
                    f"--screenshot={png}", out.as_uri()], capture_output=True, timeout=120)
    assert png.stat().st_size > 10_000
