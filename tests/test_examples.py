import importlib.util
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_watch_reward_runs_and_saves_its_picture(tmp_path, capsys):
    example = _load("watch_reward")
    plot = tmp_path / "grid.png"
    example.main(example.Args(plot=str(plot)))
    out = capsys.readouterr().out
    assert "5 groups" in out and "only encoder-decoder 1" in out
    rewards = [float(line.split()[1]) for line in out.splitlines() if line[:5].strip()[:1] == "0"]
    assert len(rewards) == 7 and max(rewards) == rewards[2]  # c = 0.2 is closest to the target
    assert plot.read_bytes()[:4] == b"\x89PNG"
