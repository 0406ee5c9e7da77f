"""Worker for test_distributed.py. Under torchrun (WORLD_SIZE=2) each process trains on its half of every global
batch of 16 sentences; run plainly it is the single-process reference with batches of 16. Dropout is off so that the
two must agree. usage: [torchrun --nproc_per_node 2] dist_worker.py OUT"""
import os, sys
from pathlib import Path
import torch, torch.distributed as dist
from fastai.torch_core import set_seed
from fastai.callback.progress import ProgressCallback
from contproto_fastai.testing import toy_task
from contproto_fastai.model import SpanNER, tiny_encoder
from contproto_fastai.pseudo import ContProtoState, teacher_pseudo_labels
from contproto_fastai.learner import student_learner
from contproto_fastai.presets import contproto_callbacks
from contproto_fastai.distributed import DistributedSelfTraining, rank

out = Path(sys.argv[1]); out.mkdir(parents=True, exist_ok=True)
world = int(os.environ.get('WORLD_SIZE', 1))
if world > 1: dist.init_process_group('gloo')
torch.set_num_threads(1)
set_seed(0, reproducible=True)
task = toy_task(n_src=96, n_tgt=64, n_dev=16, seed=1)
mk = lambda seed: SpanNER(tiny_encoder(len(task.tokenizer), hidden=32, seed=seed, dropout=0.), len(task.labels),
                          max_span_len=task.max_span_len, dropout=0.)
state = ContProtoState(teacher_pseudo_labels(mk(0), task.tgt_train), classes=task.labels.classes)
initial = state.pseudo_labels.probs.clone()
learn = student_learner(mk(1), task.src_train, task.tgt_train, task.src_dev, state, bs=16 // world, lr=3e-3, seed=0,
                        cbs=contproto_callbacks('contproto') + [DistributedSelfTraining()])
learn.remove_cb(ProgressCallback)
learn.fit_one_cycle(2, 3e-3)
if rank() == 0 or world == 1:
    torch.save(dict(state=state.state_dict(), model=learn.model.state_dict(), values=learn.recorder.values, initial=initial), out/'final.pt')
else:
    torch.save(dict(state=state.state_dict()), out/f'final_rank{rank()}.pt')
if world > 1: dist.destroy_process_group()
