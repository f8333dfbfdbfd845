import sys, glob, os, json
import numpy as np
import edge_ser
MAP = {"dis": "disgust", "gio": "happy", "neu": "neutral", "pau": "fear", "rab": "angry", "tri": "sad"}
corpus = sys.argv[2] if len(sys.argv) > 2 else "emovo"
if corpus == "esd":
    files = sorted(glob.glob("/work/shared/data/esd/0020/*/*.ogg"))[::3]
    MAP = {"Angry": "angry", "Happy": "happy", "Neutral": "neutral", "Sad": "sad"}
else:
    files = sorted(glob.glob("/work/shared/data/emovo/*/*.ogg"))
model = sys.argv[1]
rec = edge_ser.Recognizer(model=model)
res = {}
for gain in (0.0, -20.0):
    right = n = 0
    labels = []
    for f in files:
        emo = MAP.get(os.path.basename(os.path.dirname(f)) if corpus == "esd" else os.path.basename(f).split("-")[0])
        if emo is None:
            continue
        import soundfile as sf
        y, sr = sf.read(f, dtype="float32")
        if y.ndim > 1: y = y.mean(axis=1)
        y = y * (10 ** (gain / 20))
        r = rec.classify(y, sample_rate=sr)
        e = r.emotion
        labels.append(e)
        n += 1; right += (e == emo)
    res[gain] = (right / n, n, labels)
agree = np.mean([a == b for a, b in zip(res[0.0][2], res[-20.0][2])])
print(json.dumps({"model": model, "corpus": corpus, "acc_0dB": round(res[0.0][0], 4), "acc_-20dB": round(res[-20.0][0], 4), "n": res[0.0][1], "agree": round(float(agree), 4)}))
