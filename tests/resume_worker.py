"""Worker for test_resume.py: trains a tiny ContProto student on the toy task with checkpoints every batch.
usage: python resume_worker.py OUT {full|resume} [SLEEP_PER_BATCH]"""
import sys, time
from pathlib import Path
import torch
from fastai.torch_core import set_seed
from fastai.callback.core import Callback
from fastai.callback.progress import ProgressCallback
from fastai.callback.tracker import SaveModelCallback
from contproto_fastai.testing import toy_task
from contproto_fastai.model import SpanNER, tiny_encoder
from contproto_fastai.pseudo import ContProtoState, teacher_pseudo_labels
from contproto_fastai.learner import student_learner
from contproto_fastai.checkpoint import Checkpoint
from contproto_fastai.contproto import PseudoLabelF1
from contproto_fastai.presets import contproto_callbacks

out, mode = Path(sys.argv[1]), sys.argv[2]
pause = float(sys.argv[3]) if len(sys.argv) > 3 else 0.
torch.set_num_threads(1)
set_seed(0, reproducible=True)
task = toy_task(n_src=96, n_tgt=64, n_dev=16, seed=1)
mk = lambda seed: SpanNER(tiny_encoder(len(task.tokenizer), hidden=32, seed=seed), len(task.labels), max_span_len=task.max_span_len, dropout=0.1)
state = ContProtoState(teacher_pseudo_labels(mk(0), task.tgt_train), classes=task.labels.classes)

class Slow(Callback):
    "Give the test time to kill the process mid-epoch (no effect on what is computed)."
    def after_batch(self): time.sleep(pause)

cbs = contproto_callbacks('contproto') + [PseudoLabelF1(task.tgt_train, task.tgt_sents, task.labels.classes),
                                          SaveModelCallback(monitor='span_f1', fname='best'), ckpt := Checkpoint(out/'ckpt.pt', every=1), Slow()]
learn = student_learner(mk(1), task.src_train, task.tgt_train, task.src_dev, state, bs=16, lr=3e-3, cbs=cbs, path=out, seed=0)
learn.remove_cb(ProgressCallback)
if mode == 'resume': learn.resume(out/'ckpt.pt')
learn.fit_one_cycle(3, 3e-3)
torch.save(dict(model=learn.model.state_dict(), state=state.state_dict(), values=learn.recorder.values,
                elapsed=ckpt.elapsed(), carried=ckpt.carried), out/'final.pt')
print('done')
