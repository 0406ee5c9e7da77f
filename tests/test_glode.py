"""GLoDe's denoising (`contproto_fastai.glode`): votes, thresholds and blended labels on a hand-built memory; a toy
student whose labels move after warm-up and exactly as the rule says; no target gold read; exact resume from a
mid-epoch or epoch-boundary checkpoint; the neighbour search chunked and at training size; two processes.

Run as a script, this file is the worker of the two-process test:
    [python -m torch.distributed.run --nproc_per_node 2] tests/test_glode.py OUT"""
import copy, math, os, subprocess, sys
from pathlib import Path
import pytest, torch
import torch.nn.functional as F
from torch import tensor
from contproto_fastai.model import SpanOutput
from fastai.callback.core import Callback
from fastai.callback.progress import ProgressCallback
from fastai.torch_core import set_seed
from contproto_fastai.glode import (GlodeRefiner, knn_class_counts, global_vote, local_vote, blend, own_class_sums,
                                    class_means, keep_for_memory)
from contproto_fastai.contproto import DoubleForward, SupConLoss, PseudoPositive, PrototypeEMA, Warmup, PseudoLabelF1
from contproto_fastai.checkpoint import Checkpoint
from contproto_fastai.data import encode
from contproto_fastai.model import SpanNER, tiny_encoder
from contproto_fastai.pseudo import ContProtoState, PseudoLabels, teacher_pseudo_labels
from contproto_fastai.learner import student_learner
from contproto_fastai.testing import toy_task

ENV = {**os.environ, 'OMP_NUM_THREADS': '1', 'PYTHONWARNINGS': 'ignore'}
INF = math.inf


# ---------------------------------------------------------------------------------------------------- (a) by hand
# Classes O, PER, LOC. Memory: three O entries on the first axis, two PER on the second, one LOC on the third.
MEMORY, MEMORY_LABELS = torch.eye(3)[[0, 0, 0, 1, 1, 2]], tensor([0, 0, 0, 1, 1, 2])
# spans a ∝ (3,1,0), b ∝ (1,3,2), c ∝ (2,0,3), d ∝ (0,1,1); the prototypes are the axes, so φ_c·ζ = ζ_c
ZETA = F.normalize(tensor([[3., 1, 0], [1, 3, 2], [2, 0, 3], [0, 1, 1]]), dim=-1)
PSEUDO = tensor([[.6, .3, .1], [.2, .5, .3], [.3, .3, .4], [.5, .4, .1]])     # labels O, PER, LOC, O


def test_hand_built_memory_votes_thresholds_and_blend():
    # k = 3 nearest: a -> the three O; b -> PER, PER (3/√14), LOC (2/√14); c -> LOC (3/√13), two O (2/√13);
    # d -> PER, PER, LOC all at 1/√2, ahead of every O (0)
    counts = knn_class_counts(ZETA, MEMORY, MEMORY_LABELS, 3, k=3)
    assert counts.tolist() == [[3, 0, 0], [0, 2, 1], [2, 0, 1], [0, 2, 1]]
    # thresholds of this "epoch": mean over the spans labelled c of their own-class value
    labels = PSEUDO.argmax(-1)
    assert labels.tolist() == [0, 1, 2, 0]
    s, n = own_class_sums(counts, labels)
    assert s.tolist() == [3, 2, 1] and n.tolist() == [2, 1, 1]
    assert class_means(s, n, torch.full((3,), INF)).tolist() == [1.5, 2., 1.]
    s, n = own_class_sums(ZETA, labels)
    assert class_means(s, n, torch.full((3,), INF)).tolist() == pytest.approx([3 / 10**.5 / 2, 3 / 14**.5, 3 / 13**.5])
    assert class_means(s, n * tensor([1., 1, 0], dtype=torch.float64), tensor([9., 9, 7])).tolist()[2] == 7.   # no span: keeps
    # votes with thresholds ρ = (.5, .75, .9) and n̄ = (1.5, 2, 1) (× 0.9 = 1.35, 1.8, 0.9)
    g = global_vote(ZETA, tensor([.5, .75, .9]))
    assert g.tolist() == [[1, 0, 0], [0, 1, 0], [1, 0, 0], [0, 0, 0]]     # d: PER .707 < .75, nearest not O: no vote
    l = local_vote(counts, tensor([1.5, 2., 1.]))
    assert l.tolist() == [[1, 0, 0], [0, .5, .5], [.5, 0, .5], [0, .5, .5]]
    new, moved = blend(PSEUDO, g, l, 0.9)
    # avg = (1,0,0), (0,¾,¼), (¾,0,¼), (0,½,½) (d: only the local vote)
    expect = [[.64, .27, .09], [.18, .525, .295], [.345, .27, .385], [.45, .41, .14]]
    assert torch.allclose(new, tensor(expect), atol=1e-6) and moved.all()
    # no vote at all: the label is kept; O counts when nearest even under its threshold; ∞ thresholds: nothing else
    kept, mv = blend(PSEUDO[:1], torch.zeros(1, 3), torch.zeros(1, 3), 0.9)
    assert torch.equal(kept, PSEUDO[:1]) and not mv.any()
    assert global_vote(tensor([[.3, .2, .1]]), tensor([.9, INF, INF])).tolist() == [[1, 0, 0]]
    assert global_vote(tensor([[.1, .3, .2]]), tensor([.9, INF, INF])).tolist() == [[0, 0, 0]]
    assert local_vote(torch.zeros(1, 3), torch.zeros(3)).tolist() == [[0, 0, 0]]     # no neighbours: no vote


def test_hand_built_callback_warmup_then_refine():
    "The callback on a stand-in learner: one source sentence (the memory's six spans) and one target sentence (a-d)."
    from types import SimpleNamespace as NS
    one = lambda n: torch.ones(1, n, dtype=torch.bool)
    cb = GlodeRefiner(weight=0.9, k=1, o_keep=1.)
    st = ContProtoState(PseudoLabels.from_probs([PSEUDO.clone()]), prototypes=torch.eye(3), classes=['O', 'PER', 'LOC'])
    cb.learn = NS(state=st, cbs=[PrototypeEMA(), SupConLoss(), cb], prototype_ema=PrototypeEMA(), training=True, n_epoch=2, iter=0,
                  pred=dict(src=SpanOutput(zeta=MEMORY[None], span_mask=one(6)), tgt=SpanOutput(zeta=ZETA[None], span_mask=one(4))),
                  xb=(dict(src=dict(span_mask=one(6)), tgt=dict(span_mask=one(4))),))
    cb.before_fit()
    for epoch, refine in ((0, False), (1, True)):
        st.refine, cb.learn.epoch = refine, epoch
        cb.learn.yb = (dict(src=MEMORY_LABELS[None], tgt=tensor([0]), tgt_pseudo=st.pseudo_labels.probs[None].clone()),)
        cb.before_epoch(); cb.after_pred(); cb.after_train()
        if epoch == 0:
            assert torch.equal(st.pseudo_labels.probs, PSEUDO)                       # warm-up: nothing moves
            m = st.records.glode_memory                                              # 6 source + 4 target spans
            assert m['labels'].tolist() == [0, 0, 0, 1, 1, 2, 0, 1, 2, 0] and m['target'].tolist() == [False] * 6 + [True] * 4
            assert m['thresholds_local'].tolist() == [1, 1, 1]                        # bootstrap: each its own nearest
            assert st.margins.tolist() == pytest.approx([3 / 10**.5 / 2, 3 / 14**.5, 3 / 13**.5])
    # epoch 1, k = 1: every span's nearest entry is itself, so the local vote is its own label (1 > 0.9);
    # globally a and c count O (.949, .555 > .474), b and d beat no threshold and are not nearest to O
    local = tensor([[1., 0, 0], [0, 1, 0], [0, 0, 1], [1, 0, 0]])
    glob = tensor([[1., 0, 0], [0, 0, 0], [1, 0, 0], [0, 0, 0]])
    avg = F.normalize(local + glob, p=1, dim=-1)
    assert torch.allclose(st.pseudo_labels.probs, .9 * PSEUDO + .1 * avg, atol=1e-6)
    recs = st.records.glode
    assert [(r['refined'], r['weight'], r['moved'], r['local_bootstrap']) for r in recs] == [(False, None, 0, True), (True, .9, 4, False)]
    assert recs[0]['memory_per_class'] == [5, 3, 2] and recs[1]['thresholds_local'] == [1, 1, 1]


def test_partners_are_checked():
    from types import SimpleNamespace as NS
    from contproto_fastai.contproto import MarginRefiner
    st = ContProtoState(PseudoLabels.from_probs([PSEUDO.clone()]))
    cb = GlodeRefiner()
    for cbs, proto, msg in (([PrototypeEMA(), cb], PrototypeEMA(), 'GlodeRefiner needs SupConLoss'),
                            ([SupConLoss(), cb], PrototypeEMA(), 'GlodeRefiner needs PrototypeEMA'),
                            ([PrototypeEMA(), SupConLoss(), MarginRefiner(), cb], PrototypeEMA(), 'replaces MarginRefiner'),
                            ([PrototypeEMA(rep='z'), SupConLoss(), cb], PrototypeEMA(rep='z'), "PrototypeEMA(rep='zeta')")):
        cb.learn = NS(state=st, cbs=cbs, prototype_ema=proto)
        with pytest.raises(ValueError, match=msg.replace('(', r'\(').replace(')', r'\)')): cb.before_fit()


# ---------------------------------------------------------------------------------------------------- toy student
@pytest.fixture(scope='module')
def task():
    return toy_task(n_src=48, n_tgt=32, n_dev=16, seed=4)


def _mk(task, seed, dropout=0.1):
    return SpanNER(tiny_encoder(len(task.tokenizer), hidden=32, seed=seed, dropout=dropout), len(task.labels),
                   max_span_len=task.max_span_len, dropout=dropout)


def _callbacks(refiner=True, **kw):
    cbs = [DoubleForward(), SupConLoss(), PseudoPositive(), PrototypeEMA()]
    return cbs + ([GlodeRefiner(**{**dict(k=20, o_keep=0.2), **kw})] if refiner else []) + [Warmup(1)]


def _student(task, cbs=(), epochs=3, refiner=True, resume=None, dropout=0.1, bs=16, **kw):
    set_seed(0, reproducible=True)
    state = ContProtoState(teacher_pseudo_labels(_mk(task, 0, dropout), task.tgt_train), classes=task.labels.classes)
    learn = student_learner(_mk(task, 1, dropout), task.src_train, task.tgt_train, task.src_dev, state, bs=bs, lr=3e-3, seed=0,
                            select=None, cbs=_callbacks(refiner, **kw) + list(cbs))
    learn.remove_cb(ProgressCallback)
    learn.initial = state.pseudo_labels.probs.clone()
    if resume: learn.resume(resume)
    with learn.no_logging(): learn.fit(epochs, 3e-3)
    return learn


class Snapshot(Callback):
    "The pseudo labels at the end of each training epoch."
    def before_fit(self): self.snaps = []
    def after_train(self): self.snaps.append(self.learn.state.pseudo_labels.probs.clone())


class Expect(Callback):
    "Before the refiner: compute what the rule gives for this batch from the exported functions."
    order = GlodeRefiner.order - 0.5
    def __init__(self): self.expected = None
    def after_pred(self):
        st, self.expected = self.learn.state, None
        if not self.training or not st.refine: return
        pred, y, k = self.learn.pred['tgt'], self.learn.yb[0], self.learn.glode_refiner.k
        mask, old = pred['span_mask'], y['tgt_pseudo']
        z = pred['zeta'][mask].detach().float()
        mem = st.records.glode_memory
        counts = knn_class_counts(z, mem['reps'], mem['labels'], st.pseudo_labels.n_classes, k)
        w = self.learn.glode_refiner.weight_at(self.epoch, self.n_epoch)
        new, _ = blend(old[mask], global_vote(z @ st.prototypes.T, st.margins), local_vote(counts, mem['thresholds_local'], 0.9), w)
        self.expected = (old.clone(), new)


class Check(Callback):
    "After the refiner: the batch's labels (what its loss sees) and the store hold exactly the rule's result."
    order = GlodeRefiner.order + 0.5
    def __init__(self, expect): self.expect, self.checked, self.changed = expect, 0, 0
    def after_pred(self):
        if self.expect.expected is None: return
        old, new = self.expect.expected
        y, mask = self.learn.yb[0], self.learn.pred['tgt']['span_mask']
        assert torch.equal(y['tgt_pseudo'][mask], new)
        assert torch.equal(self.learn.state.pseudo_labels.gather(y['tgt'], mask.shape[1])[mask], new)
        self.checked += 1; self.changed += int(not torch.equal(old[mask], new))


def test_toy_student_refines_after_warmup_only_and_exactly_by_the_rule(task):
    snap, exp = Snapshot(), Expect()
    chk = Check(exp)
    learn = _student(task, [snap, exp, chk], epochs=3)
    st, initial = learn.state, learn.initial
    assert torch.equal(snap.snaps[0], initial)                                  # warm-up epoch: untouched
    assert (snap.snaps[1] - initial).abs().max() > 1e-3                          # after it: refined
    assert (snap.snaps[2] - snap.snaps[1]).abs().max() > 1e-4
    assert chk.checked == 2 * 3 and chk.changed == chk.checked                   # every refining batch, each moved labels
    assert torch.allclose(st.pseudo_labels.probs.sum(-1), torch.ones(len(initial)), atol=1e-5)
    recs = st.records.glode
    assert [r['refined'] for r in recs] == [False, True, True] and [r['local_bootstrap'] for r in recs] == [True, False, False]
    assert [r['weight'] for r in recs] == [None, pytest.approx(0.9), pytest.approx(0.85)]   # 0.95 → 0.8 over 3 epochs
    assert recs[0]['moved'] == recs[0]['spans'] == 0 and all(r['moved'] > 0 and r['moved'] + r['no_vote'] == r['spans'] for r in recs[1:])
    for r in recs:
        assert r['memory'] == sum(r['memory_per_class']) > r['memory_target'] > 0
        assert all(t is not None for t in r['thresholds_global']) and all(t is not None for t in r['thresholds_local'])
    assert torch.equal(st.margins, tensor([t for t in recs[-1]['thresholds_global']]).float())
    import json; json.dumps(recs)                                                # the per-epoch records are JSON-ready


def test_warmup_epoch_trains_exactly_as_without_the_refiner(task):
    "Its O-span draws use a generator of its own: in the warm-up epoch the run is bit-identical to one without it."
    a, b = _student(task, epochs=1), _student(task, epochs=1, refiner=False)
    for k, v in a.model.state_dict().items(): assert torch.equal(v, b.model.state_dict()[k]), k
    assert torch.equal(a.state.prototypes, b.state.prototypes) and torch.equal(a.state.pseudo_labels.probs, b.state.pseudo_labels.probs)


# ---------------------------------------------------------------------------------------------------- (c) no gold
def _with_gold(task, gold):
    "A copy of the task whose target sentences carry `gold(sentence)` as gold tags, re-encoded the way the task is."
    t = copy.copy(task)
    t.tgt_sents = [type(s)(s.tokens, None, s.path, s.line, gold(s)) for s in task.tgt_sents]
    t.tgt_train = encode(t.tgt_sents, t.tokenizer, None, max_span_len=t.max_span_len, max_len=64)[0]
    return t


def test_target_gold_never_read(task):
    import random
    rng = random.Random(0)
    scrambled = _with_gold(task, lambda s: [rng.choice(['O', 'B-PER', 'B-LOC', 'B-ORG']) for _ in s.tokens])
    removed = _with_gold(task, lambda s: None)
    runs = {name: _student(t, [PseudoLabelF1(t.tgt_train, t.tgt_sents, t.labels.classes)], epochs=2)
            for name, t in (('gold', task), ('scrambled', scrambled), ('removed', removed))}
    ref = runs['gold'].state
    assert ref.records.pseudo_f1[0] is not None and runs['removed'].state.records.pseudo_f1 == [None] * 3
    assert ref.records.pseudo_f1 != runs['scrambled'].state.records.pseudo_f1          # the analysis did see the gold ...
    assert not torch.equal(ref.pseudo_labels.probs, runs['gold'].initial)                # (labels were refined)
    for name in ('scrambled', 'removed'):                                                # ... training did not
        st = runs[name].state
        assert torch.equal(ref.pseudo_labels.probs, st.pseudo_labels.probs), name
        assert torch.equal(ref.prototypes, st.prototypes) and torch.equal(ref.margins, st.margins), name
        assert ref.records.glode == st.records.glode, name
        for k in ('reps', 'labels', 'target', 'thresholds_local'): assert torch.equal(ref.records.glode_memory[k], st.records.glode_memory[k])


# ---------------------------------------------------------------------------------------------------- (d) resume
class Killed(Exception): pass

class Kill(Callback):
    "Stop the process's fit right after the checkpoint of batch `batches` of `epoch` (0: at the epoch's start)."
    order = Checkpoint.order + 1
    def __init__(self, epoch, batches): self.at = (epoch, batches)
    def before_train(self):
        if self.at == (self.epoch, 0): raise Killed('killed here')
    def after_batch(self):
        if self.training and self.at == (self.epoch, self.iter + 1): raise Killed('killed here')


def _same_run(a, b):
    for k, v in a.model.state_dict().items(): assert torch.equal(v, b.model.state_dict()[k]), k
    sa, sb = a.state, b.state
    assert torch.equal(sa.pseudo_labels.probs, sb.pseudo_labels.probs)
    assert torch.equal(sa.prototypes, sb.prototypes) and torch.equal(sa.margins, sb.margins)
    assert sa.records.glode == sb.records.glode
    for k in ('reps', 'labels', 'target', 'thresholds_local'): assert torch.equal(sa.records.glode_memory[k], sb.records.glode_memory[k]), k


@pytest.mark.parametrize('epoch,batches', [(1, 2), (2, 0)], ids=['mid-epoch', 'epoch-boundary'])
def test_killed_and_resumed_equals_uninterrupted(task, tmp_path, epoch, batches):
    ref = _student(task, [Checkpoint(tmp_path/'ref.pt', every=1)], epochs=3)
    ck = tmp_path/'ck.pt'
    with pytest.raises(Killed): _student(task, [Checkpoint(ck, every=1), Kill(epoch, batches)], epochs=3)
    saved = torch.load(ck, weights_only=False)
    assert (saved['epoch'], saved['batches']) == (epoch, batches)
    if batches:                                                                       # the unfinished epoch's spans
        assert next(v for k, v in saved['callbacks'].items() if k.startswith('GlodeRefiner'))['memory'] is not None
    res = _student(task, [Checkpoint(ck, every=1)], epochs=3, resume=ck)
    _same_run(ref, res)


# ---------------------------------------------------------------------------------------------------- (e) search
def test_knn_chunks_and_size():
    g = torch.Generator().manual_seed(0)
    mem, lab = F.normalize(torch.randn(3000, 16, generator=g), dim=-1), torch.randint(0, 5, (3000,), generator=g)
    q = F.normalize(torch.randn(700, 16, generator=g), dim=-1)
    whole = knn_class_counts(q, mem, lab, 5, k=40, chunk=700)
    for chunk in (1, 64, 333, None): assert torch.equal(knn_class_counts(q, mem, lab, 5, k=40, chunk=chunk), whole), chunk
    assert torch.equal(knn_class_counts(q, mem, lab, 5, k=40, max_elems=3000 * 50), whole)      # default chunk of 50 queries
    # against a brute-force reference: sort every similarity row
    ref = F.one_hot(lab[(q @ mem.T).argsort(1, descending=True)[:, :40]], 5).sum(1).float()
    assert torch.equal(whole, ref)
    # the size the callback meets in training: 20k entries × 128 dims, 2k target spans, k = 300
    big_mem, big_lab = F.normalize(torch.randn(20_000, 128, generator=g), dim=-1), torch.randint(0, 5, (20_000,), generator=g)
    counts = knn_class_counts(F.normalize(torch.randn(2_000, 128, generator=g), dim=-1), big_mem, big_lab, 5)
    assert counts.shape == (2_000, 5) and torch.equal(counts.sum(-1), torch.full((2_000,), 300.))


def test_memory_keeps_entities_and_a_seeded_share_of_O():
    labels = torch.cat([torch.zeros(20_000, dtype=torch.long), torch.arange(1, 5).repeat(50)])
    keep = keep_for_memory(labels, 0.03, torch.Generator().manual_seed(1))
    assert keep[20_000:].all() and 450 < int(keep[:20_000].sum()) < 750
    assert torch.equal(keep, keep_for_memory(labels, 0.03, torch.Generator().manual_seed(1)))


# ---------------------------------------------------------------------------------------------------- processes
def test_two_processes_hold_the_same_state(tmp_path):
    """Two CPU processes (gloo, torchrun), each with half of every global batch, end with one state: the same pseudo
    labels, thresholds and memory; the memory of the warm-up epoch (every span kept, `o_keep=1`) has the spans of the
    single-process run, its thresholds and the final labels agree with that run's. (About a minute: process start-ups.)"""
    me = str(Path(__file__).resolve())
    _worker(tmp_path/'one')                                                   # the single-process reference, here
    r = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2', '--master_port', '29531', me,
                        str(tmp_path/'two')], capture_output=True, text=True, env=ENV, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    one = torch.load(tmp_path/'one'/'rank0.pt', weights_only=False)
    r0, r1 = (torch.load(tmp_path/'two'/f'rank{i}.pt', weights_only=False) for i in (0, 1))
    s0, s1 = r0['state'], r1['state']
    assert torch.equal(s0['pseudo_labels']['probs'], s1['pseudo_labels']['probs'])
    assert torch.equal(s0['margins'], s1['margins']) and torch.equal(s0['prototypes'], s1['prototypes'])
    assert s0['records']['glode'] == s1['records']['glode']
    for k in ('reps', 'labels', 'target', 'thresholds_local'): assert torch.equal(s0['records']['glode_memory'][k], s1['records']['glode_memory'][k]), k
    assert (s0['pseudo_labels']['probs'] - r0['initial']).abs().max() > 1e-3                  # refined in epoch 1
    e1, e2 = one['state']['records']['glode'][0], s0['records']['glode'][0]
    assert (e1['memory'], e1['memory_per_class'], e1['memory_target']) == (e2['memory'], e2['memory_per_class'], e2['memory_target'])
    assert e1['thresholds_global'] == pytest.approx(e2['thresholds_global'], abs=1e-4)
    assert s0['records']['glode'][1]['spans'] == one['state']['records']['glode'][1]['spans']     # every target span refined once
    # and the whole run agrees with the single process on the same global batches (as tests/test_distributed.py checks for
    # ContProto): same neighbours, votes and labels, up to float rounding of the two processes' sums
    assert torch.allclose(one['state']['pseudo_labels']['probs'], s0['pseudo_labels']['probs'], atol=1e-4)


def _worker(out):
    "One process of the two-process test (or the single-process reference when not under torchrun)."
    import torch.distributed as dist
    from contproto_fastai.distributed import DistributedSelfTraining, rank
    out.mkdir(parents=True, exist_ok=True)
    world = int(os.environ.get('WORLD_SIZE', 1))
    if world > 1: dist.init_process_group('gloo')
    torch.set_num_threads(1)
    task = toy_task(n_src=48, n_tgt=32, n_dev=16, seed=4)
    learn = _student(task, [DistributedSelfTraining()], epochs=2, dropout=0., bs=16 // world, o_keep=1.)
    torch.save(dict(state=learn.state.state_dict(), initial=learn.initial), out/f'rank{rank()}.pt')
    if world > 1: dist.destroy_process_group()


if __name__ == '__main__':
    _worker(Path(sys.argv[1]))
