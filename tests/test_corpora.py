"""edge_ser_train.corpora: every corpus recognised from its released layout, labels/speakers/sex, skipped files explained."""
import pytest

pytest.importorskip("edge_ser_train", reason="needs the training distribution (edge-ser-train)")

from corpus_factory import (make_baved, make_cremad, make_emodb, make_emovo, make_esd, make_folders,  # noqa: E402
                            make_ravdess, make_savee, make_tess, tone)

from edge_ser_train import corpora  # noqa: E402
from edge_ser_train.corpora import CorpusError, for_task, for_task_partial, load_corpus  # noqa: E402


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
    with pytest.raises(CorpusError, match="no such file"):
        load_corpus(tmp_path / "missing.csv")


def test_load_corpora_concatenates(tmp_path):
    clips, sums = corpora.load_corpora([make_tess(tmp_path / "t"), make_emodb(tmp_path / "e")])
    assert [s.corpus for s in sums] == ["tess", "emodb"] and len(clips) == 16


def test_esd_ogg_opus_emotion_from_its_folder(tmp_path):
    from edge_ser.audio import audio_info, load_audio
    clips, s = load_corpus(make_esd(tmp_path / "esd"))
    assert s.corpus == "esd" and s.found == 10 and s.speakers == 1 and not s.skipped
    c = next(c for c in clips if c.path.endswith("0020_000351.ogg"))
    assert (c.speaker, c.sex, c.emotion, c.intensity, c.sentence) == ("esd:0020", "male", "angry", None, "000")
    assert audio_info(c.path).subtype == "OPUS" and load_audio(c.path).shape == (9600,)  # 0.6 s at 16 kHz
    assert {c.label("basic6") for c in clips} == {"angry", "happy", "neutral", "sad", None}  # surprise left out
    assert [c.targets("fine16") for c in clips if c.emotion == "sad"][0] == ("sad_low", "sad_medium", "sad_high")


def test_emovo_48k_stereo_ogg_decodes_to_16k_mono(tmp_path):
    from edge_ser.audio import load_audio
    clips, s = load_corpus(make_emovo(tmp_path / "emovo"))
    assert s.corpus == "emovo" and s.found == 2 * 7 * 2 and s.speakers == 2
    c = next(c for c in clips if c.path.endswith("gio-m1-l1.ogg"))
    assert (c.speaker, c.sex, c.emotion, c.sentence) == ("emovo:m1", "male", "happy", "l1")
    assert {c.emotion for c in clips} == {"disgust", "happy", "neutral", "fear", "angry", "surprise", "sad"}
    audio = load_audio(c.path)
    assert audio.ndim == 1 and abs(len(audio) - 9600) <= 8


def test_baved_levels_without_emotion(tmp_path):
    clips, s = load_corpus(make_baved(tmp_path / "baved"))
    assert s.corpus == "baved" and s.found == 3 * 2 * 3 and s.speakers == 3
    assert s.emotions == {"level low": 6, "neutral": 6, "level high": 6}
    c = next(c for c in clips if c.path.endswith("3-f-21-4-2-" + c.path.rsplit("-", 1)[1]))
    assert (c.speaker, c.sex, c.emotion, c.intensity, c.sentence) == ("baved:3", "female", None, "high", "4")
    assert c.label("basic6") is None and c.label("fine16") is None and len(c.targets("fine16")) == 5
    assert {c.label("basic6") for c in clips if c.intensity is None} == {"neutral"}  # level 1: neutral speech
    kept, cands, left = for_task_partial(clips, "fine16")
    assert len(kept) == 18 and not left
    assert for_task_partial(clips, "basic6")[2] == {"level low": 6, "level high": 6}


def test_folders_in_any_case_recognised_without_corpus(tmp_path):
    root = make_folders(tmp_path / "mine", names=("Angry", "happiness", "SAD", "neutral", "Fearful", "Joy", "bored"))
    clips, s = load_corpus(root)
    assert s.corpus == "folders" and s.speakers == 2
    assert s.emotions == {"angry": 4, "happy": 8, "sad": 4, "neutral": 4, "fear": 4}
    assert s.unknown_labels == {"bored": 4} and "'bored' 4" in s.text()
    assert {c.speaker for c in clips} == {"folders:alice", "folders:bob"}
    forced, _ = load_corpus(root, corpus="folders")
    assert len(forced) == len(clips)


def test_folders_fine_labels_flat_and_speaker_first(tmp_path):
    flat = make_folders(tmp_path / "flat", names=("angry_high", "Sad-Low", "surprised", "calm"), speaker_level=False)
    clips, s = load_corpus(flat)
    assert {(c.emotion, c.intensity) for c in clips} == {("angry", "high"), ("sad", "low"), ("surprise", None),
                                                          ("calm", None)}
    assert s.speakers == len(clips) and any("own speaker" in n for n in s.notes)
    spk = tmp_path / "spk"
    for who in ("ann", "ben"):
        for name, e in (("Anger", "angry"), ("Neutral", "neutral")):
            (spk / who / name).mkdir(parents=True)
            import soundfile as sf
            sf.write(str(spk / who / name / "a.flac"), tone(e, None, 0.3), 16000)
    clips, s = load_corpus(spk)
    assert s.corpus == "folders" and {c.speaker for c in clips} == {"folders:ann", "folders:ben"}


def test_folders_with_only_unknown_labels_is_an_error_listing_them(tmp_path):
    make_folders(tmp_path / "odd", names=("bored", "excited"))
    with pytest.raises(CorpusError, match="no usable folders clips.*unknown labels bored, excited"):
        load_corpus(tmp_path / "odd", corpus="folders")


def _manifest(tmp_path, rows, header="path,label,speaker,intensity"):
    import soundfile as sf
    (tmp_path / "audio").mkdir(exist_ok=True)
    for name, e in (("a", "angry"), ("b", "sad"), ("c", "neutral"), ("d", "happy")):
        sf.write(str(tmp_path / "audio" / f"{name}.ogg"), tone(e, None, 0.4), 16000, format="OGG", subtype="OPUS")
    path = tmp_path / "list.csv"
    path.write_text(header + "\n" + "\n".join(rows) + "\n")
    return path


def test_csv_manifest_bad_rows_listed_and_skipped(tmp_path):
    path = _manifest(tmp_path, ["audio/a.ogg,Anger,s1,high", "audio/b.ogg,sad,s2,", "audio/c.ogg,neutral,s1,",
                                "audio/missing.wav,angry,s1,", "audio/d.ogg,bored,s2,", "audio/d.ogg,,s2,low",
                                "audio/d.ogg,happy_high,s2,", "audio/d.ogg,happy,s2,loud"])
    clips, s = load_corpus(path)
    assert s.corpus == "csv" and s.found == 5 and s.speakers == 2
    assert [(c.emotion, c.intensity) for c in clips] == [("angry", "high"), ("sad", None), ("neutral", None),
                                                         (None, "low"), ("happy", "high")]
    assert s.skipped["file not found"] == 1 and "list.csv:5" in s.examples["file not found"]
    assert s.skipped["unknown label"] == 1 and s.unknown_labels == {"bored": 1, "intensity loud": 1}
    assert clips[0].speaker == "csv:s1" and clips[0].label("fine16") == "angry_high"


def test_csv_manifest_nothing_usable_exits_2_after_listing(tmp_path, capsys):
    from edge_ser.cli import main
    path = _manifest(tmp_path, ["audio/missing.wav,angry,s1,", "audio/a.ogg,bored,s1,"])
    with pytest.raises(CorpusError, match="file not found 1; unknown label 1; unknown labels bored"):
        load_corpus(path)
    code = main(["evaluate", "--model", "basic6-rfc", "--data", str(path), "--json"])
    err = capsys.readouterr().err
    assert code == 2 and err.strip().splitlines()[-1].startswith("error: ") and "bored" in err
    with pytest.raises(CorpusError, match="columns path,label"):
        load_corpus(_manifest(tmp_path, ["audio/a.ogg"], header="file"))


def test_csv_manifest_without_speakers_says_so(tmp_path):
    clips, s = load_corpus(_manifest(tmp_path, ["audio/a.ogg,angry", "audio/b.ogg,sad"], header="path,label"))
    assert s.speakers == 2 and any("own speaker" in n for n in s.notes)


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


@pytest.mark.integration
def test_real_extra_corpora_are_recognised():
    root = _real_data()
    if not all((root / c).is_dir() for c in ("esd", "emovo", "baved")):
        pytest.skip(f"ESD/EMOVO/BAVED not found in {root}")
    from edge_ser.audio import load_audio
    esd, s1 = load_corpus(root / "esd")
    emovo, s2 = load_corpus(root / "emovo")
    baved, s3 = load_corpus(root / "baved")
    assert (s1.corpus, s1.found, s1.speakers) == ("esd", 1652, 1) and s1.emotions["angry"] == 252
    assert (s2.corpus, s2.found, s2.speakers) == ("emovo", 588, 6) and set(s2.emotions.values()) == {84}
    assert (s3.corpus, s3.found) == ("baved", 1935)
    assert s3.emotions == {"level low": 585, "neutral": 672, "level high": 678}
    assert not (s1.skipped or s2.skipped or s3.skipped)
    for c in (esd[0], emovo[0], baved[0]):
        assert load_audio(c.path).size > 1000  # Opus decodes through the runtime's reader
