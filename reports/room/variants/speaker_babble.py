"""python reports/room/variants/speaker_babble.py [CORPUS] OUT.json: does the GE2E speaker embedding tell the
target talker's hops from the babble in the gaps?

Development sessions (`benchmarks.noisy_sessions.built_sessions(corpus, 20 utterances, seed 0)`, the first 4;
CREMA-D: every fifth actor), conditions babble / clean / pink10 / far.  Per 0.5 s hop: the int8 GE2E encoder's
speaker embedding of the 1.6 s ending there.  AUC of target-speech hops (truth 1) against gap hops (truth 0) for
the cosine to (a) the centroid of the session's true speech hops (an oracle: the best a reference voice could do)
and (b) an online reference (decaying sum of the embeddings of hops within 3 dB of the running loudest hop).
Medians of the oracle cosine on speech and gap hops beside them."""
import sys
import numpy as np
from pathlib import Path
sys.path[:0] = [str(Path(__file__).resolve().parents[3])]
from benchmarks import noisy_sessions as ns
from edge_ser import encoders as E
from edge_ser.frontend import log_mel
from sklearn.metrics import roc_auc_score

corpus = sys.argv[1] if len(sys.argv) > 2 else "cremad"
out = Path(sys.argv[-1])
res = []
for name, chosen, speech, mask, spans, babble in ns.built_sessions(ns.DATA, corpus, 20, "", 0, 4):
    for cond in ("babble", "clean", "pink10", "far"):
        y, m = ns.condition(cond, speech, mask, babble, np.random.default_rng(1), False)
        n_h = len(y) // 8000
        truth = ns.hop_truth(m, n_h)
        db = log_mel(y, top_db=None, **E.GE2E_FRONTEND)
        embs, lev = [], []
        for k in range(n_h):
            end = min(db.shape[1], (k + 1) * 50)
            seg = db[:, max(0, end - 160):end]
            embs.append(E.ge2e(seg, seg.shape[1], output="embedding", precision="int8"))
            lev.append(float(np.max(db[:, max(0, end-50):end].mean(0))))
        embs = np.array(embs); lev = np.array(lev)
        sp, gap = truth == 1, truth == 0
        c = embs[sp].mean(0); c /= np.linalg.norm(c)
        cos = embs @ c
        auc = roc_auc_score(np.r_[np.ones(sp.sum()), np.zeros(gap.sum())], np.r_[cos[sp], cos[gap]])
        # online: centroid of the embeddings of hops within 3 dB of the loudest hop so far (running)
        on = np.zeros(n_h); acc = np.zeros(256); peak = -1e9
        for k in range(n_h):
            on[k] = embs[k] @ acc / (np.linalg.norm(acc) + 1e-9) if acc.any() else 1.0
            peak = max(peak - 0.05, lev[k])
            if lev[k] >= peak - 3:
                acc = 0.9 * acc + embs[k]
        auc_on = roc_auc_score(np.r_[np.ones(sp.sum()), np.zeros(gap.sum())], np.r_[on[sp], on[gap]])
        res.append((name, cond, round(auc, 3), round(auc_on, 3), round(float(np.median(cos[sp])), 3), round(float(np.median(cos[gap])), 3)))
        print(res[-1], flush=True)

import json
out.write_text(json.dumps({"protocol": __doc__, "corpus": corpus, "columns": ["session", "condition", "auc_oracle",
                           "auc_online", "median_cos_speech", "median_cos_gap"], "rows": res}, indent=1) + "\n")
