package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"
)

// OpKind is what a POS asked a till for.
type OpKind string

// The POS requests of the load.
const (
	OpEarn    OpKind = "earn"
	OpBurn    OpKind = "burn"
	OpReverse OpKind = "reverse"
)

// Op is one POS request and the answer it finally got. The POS sends it
// with an Idempotency-Key and, like a real POS, sends it again with the
// same key until it has an answer: when the agent was killed mid-request,
// the answer is the one it committed (or a fresh one, if it committed
// nothing).
type Op struct {
	Till   int    `json:"till"`
	Key    string `json:"key"` // Idempotency-Key
	Kind   OpKind `json:"kind"`
	Member string `json:"member"`
	// Asked for: the purchase amount (earn, and a return by amount), the
	// points (burn), the earn to reverse.
	Amount   int64  `json:"amount,omitempty"`
	Points   int64  `json:"points,omitempty"`
	Original string `json:"original,omitempty"`

	// The answer.
	Answered bool   `json:"answered"`
	HTTP     int    `json:"http,omitempty"`   // its HTTP status
	Status   string `json:"status,omitempty"` // accepted, approved, declined; "" for an error
	Code     string `json:"code,omitempty"`   // a decline's or an error's code
	TxID     string `json:"tx_id,omitempty"`
	Got      int64  `json:"got,omitempty"` // the points the answer names
	Offline  bool   `json:"offline,omitempty"`
	Attempts int    `json:"attempts"`
	LastErr  string `json:"last_err,omitempty"` // why the last attempt got no answer
}

// Effect is the op's effect on its member's balance as the till told the
// POS: what the ledger must show once everything synced.
func (o *Op) Effect() int64 {
	switch {
	case o.Kind == OpEarn && o.Status == "accepted":
		return o.Got
	case o.Kind == OpReverse && o.Status == "accepted":
		return -o.Got
	case o.Kind == OpBurn && o.Status == "approved":
		return -o.Points
	}
	return 0
}

// posAnswer is what the POS API answers (the fields the load reads).
type posAnswer struct {
	Status  string `json:"status"`
	Code    string `json:"code"`
	TxID    string `json:"tx_id"`
	Points  int64  `json:"points"`
	Offline bool   `json:"offline"`
	Error   *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// load drives the POS side of every till: earns, burns, returns and
// balance lookups, in bursts, and keeps every op with its answer.
type load struct {
	members []string
	http    *http.Client

	mu  sync.Mutex
	ops []*Op
	// earns are each till's accepted earns not yet returned, to return.
	earns map[int][]*Op
}

func newLoad(members int) *load {
	l := &load{http: &http.Client{Timeout: 15 * time.Second}, earns: map[int][]*Op{}}
	for i := range members {
		l.members = append(l.members, fmt.Sprintf("M%04d", 1001+i))
	}
	return l
}

// Ops returns a copy of the ops so far.
func (l *load) Ops() []Op {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]Op, len(l.ops))
	for i, o := range l.ops {
		out[i] = *o
	}
	return out
}

// run is one POS worker of till t: it sends bursts of requests until
// start is done, and keeps re-sending each unanswered one until answer is
// done.
func (l *load) run(start, answer context.Context, t *till, worker int, seed uint64) {
	r := rand.New(rand.NewPCG(seed, uint64(t.idx)<<8|uint64(worker)))
	var wg sync.WaitGroup
	for n := 0; start.Err() == nil; n++ {
		burst := 1 + r.IntN(4)
		for i := range burst {
			key := fmt.Sprintf("t%d-w%d-%d-%d", t.idx, worker, n, i)
			op := l.next(r, t, key)
			if op == nil {
				continue
			}
			wg.Go(func() { l.do(answer, t, op) })
		}
		wg.Wait()
		select {
		case <-start.Done():
		case <-time.After(time.Duration(r.IntN(40)) * time.Millisecond):
		}
	}
}

// next picks the next request: mostly earns, then burns, returns of this
// till's own earns, and balance lookups (which warm the till's cache of
// balances for its offline burns). A lookup returns nil: it is sent here
// and not kept. Every pick draws the same numbers from r, so a worker's
// requests replay with its seed; only a return depends on timing: which
// earlier earn it names, or an earn in its place when none had its answer
// yet.
func (l *load) next(r *rand.Rand, t *till, key string) *Op {
	p, member := r.IntN(100), l.members[r.IntN(len(l.members))]
	amount, points, pick, part := 100+50*r.Int64N(200), 1+r.Int64N(40), r.Float64(), r.IntN(2) == 0
	switch {
	case p < 10:
		resp, err := l.http.Get("http://" + t.pos + "/v1/members/" + member + "/balance")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		return nil
	case p < 22:
		l.mu.Lock()
		earns := l.earns[t.idx]
		if len(earns) > 0 {
			i := int(pick * float64(len(earns)))
			e := earns[i]
			l.earns[t.idx] = append(earns[:i], earns[i+1:]...)
			l.mu.Unlock()
			op := &Op{Till: t.idx, Key: key, Kind: OpReverse, Member: e.Member, Original: e.TxID}
			if part {
				op.Amount = e.Amount / 2 // a return of part of the goods: its share of the points
			}
			return l.add(op)
		}
		l.mu.Unlock()
		return l.add(&Op{Till: t.idx, Key: key, Kind: OpEarn, Member: member, Amount: amount})
	case p < 70:
		return l.add(&Op{Till: t.idx, Key: key, Kind: OpEarn, Member: member, Amount: amount})
	default:
		return l.add(&Op{Till: t.idx, Key: key, Kind: OpBurn, Member: member, Points: points})
	}
}

func (l *load) add(op *Op) *Op {
	l.mu.Lock()
	l.ops = append(l.ops, op)
	l.mu.Unlock()
	return op
}

// do sends op until it has an answer or answer is done. A request that
// got no HTTP answer (the agent is down or was killed mid-request), a 5xx,
// or in_progress (the first request with the key still waits for the
// hub) is sent again with the same Idempotency-Key.
func (l *load) do(answer context.Context, t *till, op *Op) {
	var body any
	switch op.Kind {
	case OpEarn:
		body = map[string]any{"member": op.Member, "amount": op.Amount, "currency": "EUR", "receipt": op.Key}
	case OpBurn:
		body = map[string]any{"member": op.Member, "points": op.Points, "receipt": op.Key}
	case OpReverse:
		b := map[string]any{"original": op.Original, "receipt": op.Key}
		if op.Amount > 0 {
			b["amount"], b["currency"] = op.Amount, "EUR"
		}
		body = b
	}
	payload, _ := json.Marshal(body)
	for answer.Err() == nil {
		a, status, err := l.post(answer, t.pos, "/v1/"+string(op.Kind), op.Key, payload)
		l.mu.Lock()
		op.Attempts++
		if err == nil && (status >= 500 || (a.Error != nil && a.Error.Code == "in_progress")) {
			err = fmt.Errorf("HTTP %d %s", status, a.errCode())
		}
		if err != nil {
			op.LastErr = err.Error()
			l.mu.Unlock()
			select {
			case <-answer.Done():
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		op.Answered, op.HTTP, op.LastErr = true, status, ""
		op.Status, op.Code, op.TxID, op.Got, op.Offline = a.Status, a.Code, a.TxID, a.Points, a.Offline
		if a.Error != nil {
			op.Code = a.Error.Code
		}
		if op.Kind == OpEarn && op.Status == "accepted" && op.Got > 0 {
			l.earns[t.idx] = append(l.earns[t.idx], op)
		}
		l.mu.Unlock()
		return
	}
}

func (a *posAnswer) errCode() string {
	if a.Error == nil {
		return ""
	}
	return a.Error.Code
}

func (l *load) post(ctx context.Context, pos, path, key string, payload []byte) (posAnswer, int, error) {
	var a posAnswer
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+pos+path, bytes.NewReader(payload))
	if err != nil {
		return a, 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", key)
	resp, err := l.http.Do(req)
	if err != nil {
		return a, 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return a, 0, err // cut mid-answer: no answer
	}
	if err := json.Unmarshal(b, &a); err != nil {
		return a, 0, fmt.Errorf("HTTP %d: not JSON: %.80q", resp.StatusCode, b)
	}
	return a, resp.StatusCode, nil
}
