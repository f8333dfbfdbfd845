"""edge_ser_train.corpora: every corpus recognised from its released layout, labels/speakers/sex, skipped files explained."""
import pytest

pytest.importorskip("edge_ser_train", reason="needs the training distribution (edge-ser-train)")

from corpus_factory import make_cremad, make_emodb, make_ravdess, make_savee, make_tess  # noqa: E402

from edge_ser_train import corpora  # noqa: E402
from edge_ser_train.corpora import CorpusError, for_task, load_corpus  # noqa: E402


def test_ravdess_layout(tmp_path):
    root = make_ravdess(tmp_path / "rav", actors=(1, 2), ext=".flac", seconds=0.3)
    (root / "Actor_01" / "03-02-03-01-01-01-01.wav").write_bytes(b"")  # song, not speech
    clips, s = load_corpus(root)
    assert s.corpus == "ravdess" and s.found == len(clips) == 2 * 11
    assert s.skipped["song (vocal channel 02), not speech"] == 1
    c = next(c for c in clips if c.path.endswith("03-01-05-02-01-01-01.flac"))
    assert (c.speaker, c.sex, c.emotion, c.intensity) == ("ravdess:01", "male", "angry", "high")
    assert c.label("fine15") == "angry_high" and c.label("basic6") == "angry"
    neutral = next(c for c in clips if c.emotion == "neutral")
    assert neutral.sex == "male" and neutral.label("fine15") is None and neutral.label("basic6") == "neutral"
    assert {c.sex for c in clips if c.speaker == "ravdess:02"} == {"female"}


def test_cremad_sex_from_demographics_and_xx(tmp_path):
    root = make_cremad(tmp_path / "crema", actors=(1001, 1002), seconds=0.3)
    clips, s = load_corpus(root)
    assert s.corpus == "cremad" and s.speakers == 2
    sexes = {c.speaker: c.sex for c in clips}
    assert sexes == {"cremad:1001": "male", "cremad:1002": "female"}
    lo = next(c for c in clips if c.path.endswith("1001_IEO_SAD_LO.wav"))
    assert lo.label("fine15") == "sad_low" and lo.sentence == "IEO"
    xx = next(c for c in clips if c.path.endswith("1001_DFA_SAD_XX.wav"))
    assert xx.intensity is None and xx.label("fine15") is None and xx.label("emotion5") == "sad"
    kept, labels, left = for_task(clips, "fine15")
    assert len(kept) == 2 * 5 * 3 and all(lab.count("_") == 1 for lab in labels)
    assert sum(left.values()) == 2 * 5


def test_cremad_without_demographics_reports_unknown_sex(tmp_path):
    root = make_cremad(tmp_path / "crema", actors=(1001,), seconds=0.3)
    (root / "VideoDemographics.csv").unlink()
    clips, s = load_corpus(root)
    assert all(c.sex is None for c in clips)
    assert any("VideoDemographics" in r for r in s.skipped)


def test_tess_case_varying_folders_and_pleasant_surprise(tmp_path):
    clips, s = load_corpus(make_tess(tmp_path / "tess"))
    assert s.corpus == "tess" and s.found == 10 and s.speakers == 2
    assert {c.emotion for c in clips} == {"angry", "surprise", "fear", "sad"}
    assert all(c.sex == "female" for c in clips)
    assert {c.label("basic6") for c in clips if c.emotion == "surprise"} == {None}


@pytest.mark.parametrize("flat", [False, True])
def test_savee_both_layouts(tmp_path, flat):
    clips, s = load_corpus(make_savee(tmp_path / "savee", flat=flat))
    assert s.corpus == "savee" and s.found == 8
    assert {c.speaker for c in clips} == {"savee:DC", "savee:JE"}
    assert {c.emotion for c in clips} == {"angry", "sad", "surprise", "neutral"}


def test_emodb_boredom_skipped_with_reason(tmp_path):
    clips, s = load_corpus(make_emodb(tmp_path / "emodb"))
    assert s.corpus == "emodb" and s.found == 6
    assert s.skipped["boredom is not one of edge-ser's emotions"] == 2
    assert {c.sex for c in clips if c.speaker == "emodb:08"} == {"female"}
    assert "skipped 2: boredom" in s.text()


def test_forced_corpus_and_foreign_files(tmp_path):
    root = make_ravdess(tmp_path / "rav", actors=(1,), seconds=0.3)
    (root / "notes.wav").write_bytes(b"")
    clips, s = load_corpus(root, corpus="ravdess")
    assert s.skipped["file name not in the ravdess layout"] == 1
    with pytest.raises(CorpusError):
        load_corpus(root, corpus="tess")  # forced wrong corpus: nothing usable
    with pytest.raises(CorpusError):
        load_corpus(root, corpus="nope")


def test_errors_for_missing_or_empty_folders(tmp_path):
    with pytest.raises(CorpusError, match="no such directory"):
        load_corpus(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CorpusError, match="no audio files"):
        load_corpus(tmp_path / "empty")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "hello.wav").write_bytes(b"")
    with pytest.raises(CorpusError, match="no file names of a known corpus"):
        load_corpus(tmp_path / "other")


def test_load_corpora_concatenates(tmp_path):
    clips, sums = corpora.load_corpora([make_tess(tmp_path / "t"), make_emodb(tmp_path / "e")])
    assert [s.corpus for s in sums] == ["tess", "emodb"] and len(clips) == 16


def _real_data():
    import os
    from pathlib import Path
    root = Path(os.environ.get("EDGE_SER_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))
    if not (root / "cremad").is_dir() or not (root / "ravdess").is_dir():
        pytest.skip(f"real corpora not found in {root} (set EDGE_SER_DATA)")
    return root


@pytest.mark.integration
def test_real_corpora_are_recognised():
    root = _real_data()
    crema, s1 = load_corpus(root / "cremad")
    rav, s2 = load_corpus(root / "ravdess")
    assert (s1.corpus, s1.found, s1.speakers) == ("cremad", 4082, 50) and not s1.skipped
    assert (s2.corpus, s2.found, s2.speakers) == ("ravdess", 1080, 18)
    assert all(c.sex in ("male", "female") for c in crema)
    assert len(for_task(crema + rav, "fine15")[0]) == 750 + 720
    assert len(for_task(crema + rav, "basic6")[0]) == 4082 + 792
