"""What the ContProto callbacks compute, checked on real batches of a toy student (issue 14): the consistency term
against a float64 reference, the two dropout views, SupCon's features and labels kept aligned across views and
sides, and refined pseudo labels reaching the loss of the batch that refined them."""
import math
import pytest, torch
from fastai.callback.core import Callback
from fastai.callback.progress import ProgressCallback
from contproto_fastai import contproto as cp
from contproto_fastai.contproto import consistency_kl
from contproto_fastai.presets import contproto_callbacks
from contproto_fastai.model import SpanNER, tiny_encoder, soft_ce
from contproto_fastai.pseudo import ContProtoState, teacher_pseudo_labels
from contproto_fastai.learner import student_learner
from contproto_fastai.testing import toy_task


def kl_reference(l1, l2):
    "Eq. (6) one span at a time in float64: mean_i sum_c P_c log(P_c / P'_c), P = softmax(view 1), P' = softmax(view 2)."
    out = []
    for a, b in zip(l1.double().tolist(), l2.double().tolist()):
        za, zb = sum(math.exp(v) for v in a), sum(math.exp(v) for v in b)
        p, q = [math.exp(v) / za for v in a], [math.exp(v) / zb for v in b]
        out.append(sum(pc * math.log(pc / qc) for pc, qc in zip(p, q)))
    return sum(out) / len(out)


def test_consistency_kl_matches_float64_reference():
    torch.manual_seed(0)
    l1, l2 = torch.randn(7, 5) * 3, torch.randn(7, 5) * 3
    assert consistency_kl(l1, l2).item() == pytest.approx(kl_reference(l1, l2), rel=1e-5)
    assert consistency_kl(l2, l1).item() == pytest.approx(kl_reference(l2, l1), rel=1e-5)   # KL(P‖P'), not the reverse
    assert kl_reference(l1, l2) != pytest.approx(kl_reference(l2, l1), rel=1e-3)
    assert consistency_kl(l1, l1).item() == pytest.approx(0, abs=1e-7)


@pytest.fixture(scope='module')
def task():
    return toy_task(n_src=48, n_tgt=32, n_dev=16, seed=4)


def _student(task, preset, cbs=(), dropout=0.1, epochs=2, warmup=1):
    torch.manual_seed(0)
    mk = lambda seed: SpanNER(tiny_encoder(len(task.tokenizer), hidden=32, seed=seed, dropout=dropout), len(task.labels),
                              max_span_len=task.max_span_len, dropout=dropout)
    state = ContProtoState(teacher_pseudo_labels(mk(0), task.tgt_train), classes=task.labels.classes)
    learn = student_learner(mk(1), task.src_train, task.tgt_train, task.src_dev, state, bs=16, lr=3e-3, select=None,
                            cbs=contproto_callbacks(preset, warmup=warmup) + list(cbs))
    learn.remove_cb(ProgressCallback)
    learn.fit(epochs, 3e-3)
    return learn


class Views(Callback):
    "Keep the two views' outputs and the reg term of the first training batches."
    order = 12                       # after ConsistencyReg (11) has added its term
    def before_fit(self): self.seen = []
    def after_loss(self):
        if self.training and len(self.seen) < 3:
            self.seen.append((self.learn.pred, self.learn.pred2, float(self.learn.loss_func.terms['reg'])))


def test_double_forward_gives_two_dropout_views_and_reg_is_their_kl(task):
    v = Views(); _student(task, 'no_proto_no_cl', [v], epochs=1)
    for p1, p2, reg in v.seen:
        l1 = torch.cat([p1[k]['logits'][p1[k]['span_mask']] for k in ('src', 'tgt')])
        l2 = torch.cat([p2[k]['logits'][p2[k]['span_mask']] for k in ('src', 'tgt')])
        assert not torch.allclose(l1, l2), "the second view has its own dropout mask"
        assert reg == pytest.approx(kl_reference(l1.detach(), l2.detach()), rel=1e-4)   # eq. 6 over both sides' spans
    v0 = Views(); _student(task, 'no_proto_no_cl', [v0], dropout=0., epochs=1)      # without dropout the views coincide
    for p1, p2, reg in v0.seen:
        assert torch.allclose(p1['src']['logits'], p2['src']['logits'], atol=1e-6) and reg == pytest.approx(0, abs=1e-6)


def test_supcon_features_and_labels_stay_aligned(task, monkeypatch):
    "Every contrasted feature is a real span of one view, with its span's gold label (source) or view 1's argmax (target)."
    calls, real = [], cp.supcon_loss
    def spy(features, labels, *a, **k):
        L = learn_box[0]
        calls.append((features.detach().clone(), labels.clone(), L.pred, L.pred2, L.yb[0], L.xb[0]))
        return real(features, labels, *a, **k)
    monkeypatch.setattr(cp, 'supcon_loss', spy)
    learn_box = []
    class Grab(Callback):
        def before_fit(self): learn_box.append(self.learn)
    _student(task, 'no_proto', [Grab()], epochs=1)
    assert calls
    for feats, labels, p1, p2, y, x in calls[:3]:
        expect = {}
        for view, p in enumerate((p1, p2)):
            for side in ('src', 'tgt'):
                m = p[side]['span_mask']
                lab = y['src'][x['src']['span_mask']] if side == 'src' else p1['tgt']['logits'][m].argmax(-1)
                for z, l in zip(p[side]['zeta'][m].detach(), lab.tolist()): expect[z.numpy().tobytes()] = (view, side, l)
        got = [expect.get(f.numpy().tobytes()) for f in feats]
        assert None not in got, "every feature is one span of one view"
        assert [g[2] for g in got] == labels.tolist(), "labels aligned with their features"
        assert {(g[0], g[1]) for g in got} == {(0, 'src'), (0, 'tgt'), (1, 'src'), (1, 'tgt')}
        assert len(got) == len(expect)                   # all spans of both views and both sides, each once


def test_refined_pseudo_labels_reach_the_same_batch_loss(task):
    class Spy(Callback):
        order = -9                    # before_batch: after SelfTraining (-10) attached the stored labels
        def before_fit(self): self.rows = []
        def before_batch(self):
            if self.training: self.before = self.learn.yb[0]['tgt_pseudo'].clone()
        def after_loss(self):
            if not self.training or self.epoch == 0: return
            p, y = self.learn.pred['tgt'], self.learn.yb[0]
            self.rows.append((self.before, y['tgt_pseudo'].detach().clone(), float(self.learn.loss_func.terms['tgt']),
                              float(soft_ce(p['logits'], y['tgt_pseudo'], p['span_mask'])),
                              float(soft_ce(p['logits'], self.before, p['span_mask'])), y['tgt'].clone(), p['span_mask'].clone()))
    s = Spy(); _student(task, 'contproto', [s], epochs=2)
    assert s.rows
    changed = 0
    for before, used, term, with_used, with_before, idx, mask in s.rows:
        assert term == pytest.approx(with_used, rel=1e-5)                      # the loss used the labels as refined
        if not torch.allclose(before[mask], used[mask]):
            changed += 1
            assert term != pytest.approx(with_before, rel=1e-6)                # ... not the stored ones it started from
    assert changed == len(s.rows), "after warm-up every batch refines some labels"
