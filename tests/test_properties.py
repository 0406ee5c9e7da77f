"Property tests (hypothesis) of tag/span conversion, span enumeration, pseudo-label storage and span decoding."
import torch
from hypothesis import given, strategies as st
from contproto_fastai.data import tags_to_spans, spans_to_tags, enumerate_spans
from contproto_fastai.evaluate import decode_spans
from contproto_fastai.pseudo import PseudoLabels

TYPES = st.sampled_from(['PER', 'LOC', 'ORG', 'MISC', 'B', 'I-X', 'date_time'])


@st.composite
def spans_in_sentence(draw, max_words=30):
    "`(spans, n)`: non-overlapping `(start, end, type)` spans (possibly adjacent) laid out in `n` words, in random order."
    pos, spans = 0, []
    for gap, width, typ in draw(st.lists(st.tuples(st.integers(0, 3), st.integers(1, 5), TYPES), max_size=8)):
        s = pos + gap
        spans.append((s, s + width - 1, typ)); pos = s + width
    n = pos + draw(st.integers(0, 3))
    return draw(st.permutations(spans)), n


def bio2_to_iob1(tags):
    "IOB1: an entity starts with I-, except right after a token of an entity of the same type, where it starts with B-."
    out = []
    for i, t in enumerate(tags):
        if t.startswith('B-'):
            prev = tags[i - 1] if i else 'O'
            t = ('B-' if prev != 'O' and prev[2:] == t[2:] else 'I-') + t[2:]
        out.append(t)
    return out


@given(spans_in_sentence())
def test_spans_tags_round_trip(sp):
    spans, n = sp
    tags = spans_to_tags(spans, n)
    assert len(tags) == n
    assert sum(t != 'O' for t in tags) == sum(e - s + 1 for s, e, _ in spans)
    assert tags_to_spans(tags) == sorted(spans)


@given(spans_in_sentence())
def test_iob1_decodes_like_bio2(sp):
    spans, n = sp
    bio2 = spans_to_tags(spans, n)
    iob1 = bio2_to_iob1(bio2)
    # IOB1 only uses B- between two same-type entities, so it differs from BIO2 whenever there is an entity
    assert all(t == 'O' or t.startswith('I-') or (i and iob1[i-1][2:] == t[2:] and iob1[i-1] != 'O') for i, t in enumerate(iob1))
    assert tags_to_spans(iob1) == tags_to_spans(bio2) == sorted(spans)


@given(st.integers(0, 40), st.integers(1, 10))
def test_enumerate_spans(n, L):
    sp = enumerate_spans(n, L)
    assert len(sp) == len(set(sp))
    assert all(0 <= s <= e < n and e - s + 1 <= L for s, e in sp)
    assert len(sp) == sum(min(L, n - i) for i in range(n))
    assert sp == sorted(sp)
    # complete: every span of width <= L is there
    assert set(sp) == {(s, e) for s in range(n) for e in range(s, n) if e - s < L}


@given(st.data())
def test_pseudo_labels_gather_update_round_trip(data):
    C = data.draw(st.integers(1, 5), label='C')
    lens = data.draw(st.lists(st.integers(1, 12), min_size=1, max_size=8), label='lens')
    g = torch.Generator().manual_seed(data.draw(st.integers(0, 2**31 - 1), label='seed'))
    per_ex = [torch.softmax(torch.randn(n, C, generator=g), -1) for n in lens]
    pl = PseudoLabels.from_probs(per_ex)
    assert len(pl) == len(lens) and pl.n_classes == C and len(pl.probs) == sum(lens)
    for i, p in enumerate(per_ex): assert torch.equal(pl[i], p)

    idx = data.draw(st.lists(st.integers(0, len(lens) - 1), min_size=1, unique=True), label='idx')
    S = data.draw(st.integers(1, 14), label='S')  # may be shorter than some examples (then truncated)
    out = pl.gather(torch.tensor(idx), S)
    assert out.shape == (len(idx), S, C)
    for b, i in enumerate(idx):
        k = min(S, lens[i])
        assert torch.equal(out[b, :k], per_ex[i][:k])
        assert (out[b, k:] == 0).all()

    # update with new values (and a random mask), then gather again
    new = torch.rand(len(idx), S, C, generator=g)
    mask = torch.rand(len(idx), S, generator=g) < 0.7
    before = [pl[i].clone() for i in range(len(lens))]
    pl.update(torch.tensor(idx), new, mask)
    for i in range(len(lens)):
        exp = before[i].clone()
        if i in idx:
            b = idx.index(i); k = min(S, lens[i])
            m = mask[b, :k]
            exp[:k][m] = new[b, :k][m]
        assert torch.equal(pl[i], exp), i
    # unmasked update of exactly the gathered values is a no-op round trip
    snap = pl.probs.clone()
    pl.update(torch.tensor(idx), pl.gather(torch.tensor(idx), S))
    assert torch.equal(pl.probs, snap)


@given(st.data())
def test_decode_spans_no_overlap_and_argmax(data):
    n = data.draw(st.integers(1, 12), label='n')
    L = data.draw(st.integers(1, 4), label='L')
    C = data.draw(st.integers(2, 5), label='C')
    wi = enumerate_spans(n, L)
    S = len(wi)
    # small integer logits so that ties (equal probabilities, equal argmax) happen
    logits = torch.tensor(data.draw(st.lists(st.lists(st.integers(-3, 3), min_size=C, max_size=C), min_size=S, max_size=S),
                                    label='logits'), dtype=torch.float)
    probs = torch.softmax(logits, -1)
    mask = torch.tensor(data.draw(st.lists(st.booleans(), min_size=S, max_size=S), label='mask'))
    out = decode_spans(probs, torch.tensor(wi), mask)

    assert out == sorted(out)
    used = set()
    row = {sp: k for k, sp in enumerate(wi)}
    for s, e, c, p in out:
        k = row[(s, e)]
        assert mask[k] and c != 0
        assert probs[k, c] == probs[k].max()          # its class is its argmax
        assert abs(p - probs[k].max().item()) < 1e-6   # and the reported probability is that max
        words = set(range(s, e + 1))
        assert not (words & used)                      # never overlaps
        used |= words
    # greedy: every masked-in entity candidate left out overlaps a kept span at least as probable
    kept = {(s, e) for s, e, _, _ in out}
    for k, (s, e) in enumerate(wi):
        pmax, cmax = probs[k].max(-1)
        if not mask[k] or cmax == 0 or (s, e) in kept: continue
        assert any(max(s, a) <= min(e, b) and q >= pmax.item() - 1e-6 for a, b, _, q in out), (s, e)
