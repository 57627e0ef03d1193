// Package ingest is the hub's path from an MQTT message to a ledger commit
// and back to an ack.
//
// Messages arrive on the broker's goroutines. Handle decodes and checks them
// there (spreading the JSON work over the publishers' connections) and hands
// them to the commit loop over a bounded queue without ever blocking; when
// the queue is full the message is dropped and counted, and the agent, which
// still holds it in its outbox, sends it again.
//
// The commit loop is the hub's group commit: it takes the batches that are
// waiting, applies them in one ledger commit, and only after that commit
// returns publishes one ack batch per source batch. bbolt's own DB.Batch
// is not used, because it may run a function twice.
//
// Live traffic goes first. A batch is live when its till has nothing
// queued behind it (Backlog 0) or it carries one transaction (a burn's
// hold jumps its till's backlog on its own): a cashier waits on it. Live
// batches have a queue of their own, so a region reconnecting with a
// backlog can neither delay them in the queue nor crowd them out of it
// (a full queue drops); every commit takes all the live batches waiting
// first, then backlog batches, up to MaxGroup batches in all. The
// commit's size is not cut for the live batches' sake: measured with
// tillsync-sim bench (docs/performance.md), a budget of 200 backlog
// transactions in a commit with live batches slowed a drain 2.6 times
// and left the live tail where it was, because during a drain that tail
// is the CPU's (decoding the backlog), not the queue's.
//
// Each ack batch grants its till a window, its share of the backlog queue
// among the tills sending a backlog (credit.go), so that a region of tills
// back from an outage fills the queue without overflowing it.
//
// Every message from a terminal is authenticated before anything else is
// done with it. An enrolled terminal seals what it sends with its MAC key
// (protocol.Seal); the key comes from the ledger's enrollment records,
// held in memory (ledger.Store.TerminalAuth), so the check costs one HMAC
// per message. A message with a MAC that does not verify is refused, and
// counted (mac_refused), whichever the broker: it is forged or damaged.
// A message without one is refused from an enrolled terminal when the
// broker cannot vouch for the publisher (Options.RequireMAC: an external
// broker, which may let anyone publish on any topic); the embedded broker
// authenticated the client and confined it to its own topics, so there a
// till of protocol version 2 (which has no key) is still taken. Refused
// messages are never answered: an answer to a forged batch naming a till's
// transaction ids would be an ack that till believes.
//
// Acks go out at QoS 0 through the embedded broker, as balance replies do.
// A till's session is clean (its outbox, not the broker, carries what must
// survive a reconnect), so QoS 1 would buy no redelivery the connection's
// TCP does not already give, and would cost each ack a packet id, an entry
// in the broker's in-flight store and a PUBACK back from the till for the
// hub to read. An ack lost anyway (a connection dropped, a till's write
// queue full, which drops at either QoS) is sent again when the till
// re-sends its transactions and the hub answers them as duplicates.
// Through an external broker they stay QoS 1 (Options.AckQoS): there the
// hub's own connection to the broker can drop, and paho keeps a QoS 1
// publish for the next one where it drops a QoS 0 one.
//
// Acks and balance replies to an enrolled terminal are sealed with its key
// in turn, so that its till can tell them from forgeries (a forged ack
// would make it delete a transaction the hub never had). Every answer
// goes out in the protocol version its request came in, so that a till of
// an older version reads it.
//
// Member token sightings (protocol.Sighting, a till's report that it
// accepted a member token) take a path of their own: HandleScan checks the
// token's signature with the coalition's keys and queues the sighting; one
// goroutine records it in the ledger (ledger.Store.SeeToken) and warns,
// once per token, when a token was accepted at two stores. Nothing is
// answered: a sighting is evidence, and a lost one costs only a flag.
package ingest

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tillsync/tillsync/hub/ledger"
	"github.com/tillsync/tillsync/internal/clock"
	"github.com/tillsync/tillsync/protocol"
)

// Publisher sends a message to the broker without waiting for delivery.
type Publisher func(topic string, qos byte, payload []byte) error

// Options configures an Ingest. Store and Publish are required.
type Options struct {
	Store   ledger.Store
	Publish Publisher
	// AckQoS is the QoS acks are published at; default 0 (see the package
	// doc). The hub gives 1 for an external broker: paho drops a QoS 0
	// publish while its connection to the broker is being made again, and
	// keeps a QoS 1 one for it.
	AckQoS byte
	// QueueSize bounds the batches waiting for the commit loop in each of
	// its two queues, live and backlog (see the package doc); default 8192.
	QueueSize int
	// MaxGroup bounds the batches in one commit; default 256.
	MaxGroup int
	// TokenKeys are the coalition's member token public keys: a sighting
	// of a token none of them signed is refused. None: every sighting is.
	TokenKeys []ed25519.PublicKey
	// RequireMAC is set when the broker does not tell who published a
	// message (an external broker): an enrolled terminal's messages are
	// then refused without a valid MAC, and a revoked terminal's, or one
	// enrolled before the hub issued MAC keys, are refused altogether.
	RequireMAC bool
	// RequireEnrollment refuses the messages of every terminal that has not
	// enrolled (with an external broker; the embedded broker refuses their
	// connections itself).
	RequireEnrollment bool
	// AfterCommit, when set, is called after each ledger commit that
	// succeeded, before any of its acks is published: the one moment at
	// which a crash leaves transactions committed but unacked. It exists
	// for fault injection (tillsync-hub serve --fault-kill-after-commit,
	// used by the chaos harness); it must not block.
	AfterCommit func()
	Logger      *slog.Logger
	Clock       clock.Clock
}

// Stats counts what the ingest has seen since it started.
type Stats struct {
	Batches    int64 `json:"batches"`         // batches committed
	Commits    int64 `json:"commits"`         // ledger commits (group commits)
	Applied    int64 `json:"applied"`         // transactions applied
	Duplicates int64 `json:"duplicates"`      // transactions answered as duplicates
	Rejected   int64 `json:"rejected"`        // transactions rejected with a code
	Held       int64 `json:"held"`            // transactions held back (e.g. store not registered); their tills send them again
	Refused    int64 `json:"refused"`         // messages refused before the ledger: malformed, wrong topic, store mismatch, MAC
	MACRefused int64 `json:"mac_refused"`     // of those, not authenticated as their terminal: a wrong MAC; with an external broker, a missing one, or a revoked (or, enrollment required, unenrolled) terminal
	Replays    int64 `json:"replays_refused"` // transactions rejected seq_reused: a new id under a terminal sequence number seen before
	Dropped    int64 `json:"dropped"`         // messages dropped because the queue was full
	Queries    int64 `json:"queries"`         // balance queries answered
	QueueDepth int   `json:"queue_depth"`     // batches waiting now
	Sightings  int64 `json:"sightings"`       // member token sightings recorded
	TokenFlags int64 `json:"token_flags"`     // member tokens flagged: accepted at a second store
}

// Ingest validates, commits and acks.
type Ingest struct {
	o         Options
	log       *slog.Logger
	batches   chan *work // backlog batches
	live      chan *work // live batches: see the package doc
	queries   chan query
	sightings chan ledger.TokenSighting
	credit    *credit // the windows acks grant

	batchesN, commits, applied, dups, rejected, held, refused, dropped, queriesN, sightingsN, tokenFlags atomic.Int64
	macRefused, replays                                                                                  atomic.Int64

	// heldLog limits the warning about a store's held transactions to one
	// a minute per store: its tills re-send them every ack timeout.
	heldLog map[string]time.Time

	// recent is what the dashboard shows: rejections, latency, lags (recent.go).
	recent recent

	// statuses are the tills' newest statuses (status.go).
	statuses statusTable
}

// query is a balance query with the topic its reply goes to and the key
// that seals the reply (nil: none).
type query struct {
	q     *protocol.BalanceQuery
	reply string
	key   []byte
}

// work is one batch on its way to the ledger, with the acks for the
// transactions refused before it (bad fields); those are sent first.
type work struct {
	batch    *protocol.Batch // only the transactions bound for the ledger
	ackTopic string
	key      []byte         // the terminal's MAC key, sealing the acks; nil: none
	version  int            // the batch's protocol version, the acks' too
	early    []protocol.Ack // rejected before the ledger
	received time.Time      // when the message arrived
}

// New returns an Ingest; call Run to start its commit loop.
func New(o Options) *Ingest {
	if o.QueueSize <= 0 {
		o.QueueSize = 8192
	}
	if o.MaxGroup <= 0 {
		o.MaxGroup = 256
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	o.Clock = clock.Or(o.Clock)
	return &Ingest{
		o: o, log: o.Logger,
		batches:   make(chan *work, o.QueueSize),
		live:      make(chan *work, o.QueueSize),
		queries:   make(chan query, 1024),
		sightings: make(chan ledger.TokenSighting, 1024),
		heldLog:   make(map[string]time.Time),
		credit:    newCredit(o.QueueSize),
	}
}

// Stats returns the counters.
func (in *Ingest) Stats() Stats {
	return Stats{
		Batches: in.batchesN.Load(), Commits: in.commits.Load(), Applied: in.applied.Load(),
		Duplicates: in.dups.Load(), Rejected: in.rejected.Load(), Held: in.held.Load(), Refused: in.refused.Load(),
		Dropped: in.dropped.Load(), Queries: in.queriesN.Load(), QueueDepth: len(in.batches) + len(in.live),
		Sightings: in.sightingsN.Load(), TokenFlags: in.tokenFlags.Load(),
		MACRefused: in.macRefused.Load(), Replays: in.replays.Load(),
	}
}

// Refusals of a message for its authentication.
var (
	errRevoked = errors.New("the terminal's enrollment is revoked")
	errOldKey  = errors.New("the terminal enrolled before the hub issued MAC keys; enroll it again (the broker cannot tell who published)")
	errEnroll  = errors.New("the terminal has not enrolled, and enrollment is required")
)

// authenticate checks the MAC of a message from store/terminal on topic
// (mac: its decoded "mac" member) and returns the terminal's key, which
// seals the answer; nil when the terminal has none.
func (in *Ingest) authenticate(store, terminal, topic string, payload []byte, mac string) ([]byte, error) {
	auth := in.o.Store.TerminalAuth(store, terminal)
	switch {
	case mac != "":
		// Checked whatever the broker: a MAC that does not verify is a forgery.
		return auth.MACKey, protocol.VerifyMAC(auth.MACKey, topic, payload, mac)
	case !in.o.RequireMAC:
		// The embedded broker authenticated the publisher as the terminal.
	case auth.MACKey != nil:
		return nil, protocol.ErrMACMissing
	case auth.Revoked:
		return nil, errRevoked
	case auth.Enrolled:
		return nil, errOldKey
	case in.o.RequireEnrollment:
		return nil, errEnroll
	}
	return auth.MACKey, nil
}

// refuseMAC counts and logs a message refused for its authentication.
func (in *Ingest) refuseMAC(store, terminal, topic string, err error) {
	in.macRefused.Add(1)
	in.refused.Add(1)
	in.recent.refused(in.o.Clock.Now(), "not authenticated as its terminal", topic, err)
	in.log.Warn("message refused: not authenticated as its terminal", "store", store, "terminal", terminal, "topic", topic, "err", err)
}

// seal adds the MAC under key (none: nil) to an encoded answer.
func seal(key []byte, topic string, payload []byte) ([]byte, error) {
	if key == nil {
		return payload, nil
	}
	return protocol.Seal(key, topic, payload)
}

// HandleTx takes a message from a terminal's tx topic. It never blocks.
func (in *Ingest) HandleTx(topic string, payload []byte) {
	store, terminal, ch, err := protocol.ParseTerminalTopic(topic)
	if err != nil || ch != protocol.ChannelTx {
		in.refuse("bad topic", topic, err)
		return
	}
	b, err := protocol.ParseBatch(payload)
	if err != nil {
		in.refuse("bad batch", topic, err)
		return
	}
	// No store speaks for another: the payload must name the topic's terminal.
	if b.Store != store || b.Terminal != terminal {
		in.refuse("batch names another terminal than its topic", topic, fmt.Errorf("batch from %s/%s", b.Store, b.Terminal))
		return
	}
	key, err := in.authenticate(store, terminal, topic, payload, b.MAC)
	if err != nil {
		in.refuseMAC(store, terminal, topic, err)
		return
	}
	ackTopic, _ := protocol.TerminalTopic(store, terminal, protocol.ChannelAck)
	w := &work{ackTopic: ackTopic, key: key, version: b.Version, received: in.o.Clock.Now()}
	good := b.Txs[:0:0]
	for i := range b.Txs {
		if err := b.ValidateTx(i); err != nil {
			if !protocol.ValidID(b.Txs[i].ID) {
				in.refuse("transaction without a usable id", topic, err)
				continue
			}
			// No Member: the ledger was not read, so there is no balance to report.
			w.early = append(w.early, protocol.Ack{ID: b.Txs[i].ID, Status: protocol.StatusRejected, Code: protocol.CodeOf(err)})
			in.log.Warn("transaction rejected", "store", store, "terminal", terminal, "tx", b.Txs[i].ID, "err", err)
			continue
		}
		good = append(good, b.Txs[i])
	}
	b.Txs = good
	w.batch = b
	q := in.batches
	if b.Backlog == 0 || len(b.Txs) <= 1 { // live: see the package doc
		q = in.live
	}
	// Counted as queued before it is: the commit loop may take it at once.
	// Only a batch for the backlog queue tells the size of backlog batches
	// (not a hold sent ahead of its till's backlog, nor one emptied by
	// rejections).
	size := 0
	if q == in.batches {
		size = len(b.Txs) + len(w.early)
	}
	in.credit.arrived(ackTopic, size, b.Backlog > 0, w.received)
	select {
	case q <- w:
	default:
		in.dropped.Add(1)
		in.credit.left(ackTopic)
	}
}

// HandleQuery takes a message from a terminal's query topic. It never blocks.
func (in *Ingest) HandleQuery(topic string, payload []byte) {
	store, terminal, ch, err := protocol.ParseTerminalTopic(topic)
	if err != nil || ch != protocol.ChannelQuery {
		in.refuse("bad topic", topic, err)
		return
	}
	q, err := protocol.DecodeBalanceQuery(payload)
	if err != nil {
		in.refuse("bad balance query", topic, err)
		return
	}
	key, err := in.authenticate(store, terminal, topic, payload, q.MAC)
	if err != nil {
		in.refuseMAC(store, terminal, topic, err)
		return
	}
	reply, _ := protocol.TerminalTopic(store, terminal, protocol.ChannelReply)
	select {
	case in.queries <- query{q, reply, key}:
	default:
		in.dropped.Add(1)
	}
}

// HandleScan takes a message from a terminal's scan topic: a till's
// sighting of a member token. It never blocks. The token must verify with
// the coalition's keys (its signature only: the till checked its time) and
// the sighting must name the topic's terminal.
func (in *Ingest) HandleScan(topic string, payload []byte) {
	store, terminal, ch, err := protocol.ParseTerminalTopic(topic)
	if err != nil || ch != protocol.ChannelScan {
		in.refuse("bad topic", topic, err)
		return
	}
	s, err := protocol.DecodeSighting(payload)
	if err != nil {
		in.refuse("bad token sighting", topic, err)
		return
	}
	if s.Store != store || s.Terminal != terminal {
		in.refuse("sighting names another terminal than its topic", topic, fmt.Errorf("sighting from %s/%s", s.Store, s.Terminal))
		return
	}
	if _, err := in.authenticate(store, terminal, topic, payload, s.MAC); err != nil {
		in.refuseMAC(store, terminal, topic, err)
		return
	}
	mt, err := protocol.ParseMemberToken(s.Token, in.o.TokenKeys)
	if err != nil {
		in.refuse("sighting of a token the coalition did not sign", topic, err)
		return
	}
	select {
	case in.sightings <- ledger.TokenSighting{Nonce: mt.Nonce, Member: mt.Member, ExpiresAt: mt.ExpiresAt, Store: store, Terminal: terminal, At: s.At}:
	default:
		in.dropped.Add(1)
	}
}

func (in *Ingest) refuse(what, topic string, err error) {
	in.refused.Add(1)
	in.recent.refused(in.o.Clock.Now(), what, topic, err)
	in.log.Warn("message refused: "+what, "topic", topic, "err", err)
}

// Run commits batches and answers queries until ctx is done, then commits
// what is already queued and returns.
func (in *Ingest) Run(ctx context.Context) error {
	var side sync.WaitGroup
	side.Go(func() { in.answerQueries(ctx) })
	side.Go(func() { in.recordSightings(ctx) })
	defer side.Wait()
	group := make([]*work, 0, in.o.MaxGroup)
	for {
		group = group[:0]
		// A live batch waiting is taken first; else whichever comes.
		select {
		case w := <-in.live:
			in.commitTaken(in.fill(append(group, w)))
			continue
		default:
		}
		select {
		case w := <-in.live:
			group = append(group, w)
		case w := <-in.batches:
			group = append(group, w)
		case <-ctx.Done():
			// Commit what was accepted into the queues before stopping.
			for {
				if group = in.fill(group[:0]); len(group) == 0 {
					return nil
				}
				in.commitTaken(group)
			}
		}
		in.commitTaken(in.fill(group))
	}
}

// commitTaken commits a group just taken from the queues, which it has
// left as far as the grants count (credit.go).
func (in *Ingest) commitTaken(group []*work) {
	for _, w := range group {
		in.credit.left(w.ackTopic)
	}
	in.commit(group)
}

// fill adds to group the live batches waiting, then backlog batches,
// never past MaxGroup batches.
func (in *Ingest) fill(group []*work) []*work {
	for _, q := range []chan *work{in.live, in.batches} {
		for more := true; more && len(group) < in.o.MaxGroup; {
			select {
			case w := <-q:
				group = append(group, w)
			default:
				more = false
			}
		}
	}
	return group
}

// commit applies a group in one ledger commit, then acks every batch in it.
func (in *Ingest) commit(group []*work) {
	batches := make([]*protocol.Batch, 0, len(group))
	txs := 0 // for the grants' pace
	for _, w := range group {
		if len(w.batch.Txs) > 0 {
			batches = append(batches, w.batch)
			txs += len(w.batch.Txs)
		}
	}
	var results [][]protocol.Ack
	if len(batches) > 0 {
		var err error
		began := in.o.Clock.Now()
		results, err = in.o.Store.Apply(batches, began)
		if err != nil && len(group) > 1 {
			// One batch may be what fails: commit them one by one, so the
			// others are not held back with it.
			in.log.Warn("group commit failed; committing its batches one by one", "batches", len(batches), "err", err)
			for _, w := range group {
				in.commit([]*work{w})
			}
			return
		}
		if err != nil {
			// Nothing was committed, so nothing is acked: the agent keeps
			// the transactions and sends them again.
			in.log.Error("ledger commit failed; transactions will be re-sent", "batches", len(batches), "err", err)
			time.Sleep(100 * time.Millisecond) // do not spin on a failing disk
			return
		}
		in.commits.Add(1)
		in.credit.committed(txs, in.o.Clock.Now().Sub(began))
		if in.o.AfterCommit != nil {
			in.o.AfterCommit()
		}
	}
	now := in.o.Clock.Now()
	r := 0
	for _, w := range group {
		acks := w.early
		if len(w.batch.Txs) > 0 {
			acks = append(acks, results[r]...)
			r++
		}
		in.count(w.batch, acks)
		in.batchesN.Add(1)
		payload, err := protocol.Encode(&protocol.AckBatch{Version: w.version, Acks: acks, Window: in.credit.grant(w.ackTopic, now)})
		if err == nil {
			payload, err = seal(w.key, w.ackTopic, payload)
		}
		if err != nil {
			in.log.Error("encode acks", "err", err)
			continue
		}
		if err := in.o.Publish(w.ackTopic, in.o.AckQoS, payload); err != nil {
			in.log.Warn("publish acks", "topic", w.ackTopic, "err", err)
		}
		in.observe(w, acks)
	}
}

func (in *Ingest) count(b *protocol.Batch, acks []protocol.Ack) {
	var held int
	var code protocol.Code
	for _, a := range acks {
		switch a.Status {
		case protocol.StatusApplied:
			in.applied.Add(1)
		case protocol.StatusDuplicate:
			in.dups.Add(1)
		case protocol.StatusHeld:
			in.held.Add(1)
			held++
			code = a.Code
		default:
			in.rejected.Add(1)
			if a.Code == protocol.CodeSeqReused {
				in.replays.Add(1)
			}
		}
	}
	if held == 0 || b == nil {
		return
	}
	now := in.o.Clock.Now()
	if last, ok := in.heldLog[b.Store]; ok && now.Sub(last) < time.Minute {
		return
	}
	in.heldLog[b.Store] = now
	msg := "holding back transactions from a store the coalition has not registered; register it (tillsync-hub store add) and its tills' next re-send applies them"
	if code != protocol.CodeUnknownStore {
		msg = "holding back transactions until the operator acts; their tills keep them and send them again"
	}
	in.log.Warn(msg, "store", b.Store, "terminal", b.Terminal, "code", code, "held", held)
}

func (in *Ingest) answerQueries(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case qr := <-in.queries:
			q, topic := qr.q, qr.reply
			r := protocol.BalanceReply{Version: q.Version, RequestID: q.RequestID, Member: q.Member, AsOf: in.o.Clock.Now()}
			// What a burn can take: the balance less active holds.
			m, err := in.o.Store.Member(q.Member, r.AsOf)
			if err != nil {
				in.log.Error("balance query", "err", err)
				r.Code = protocol.CodeInternal
			}
			r.Balance, r.Known = m.Available, m.Known
			payload, err := protocol.Encode(&r)
			if err == nil {
				payload, err = seal(qr.key, topic, payload)
			}
			if err == nil {
				err = in.o.Publish(topic, 0, payload)
			}
			if err != nil {
				in.log.Warn("publish balance reply", "topic", topic, "err", err)
			}
			in.queriesN.Add(1)
		}
	}
}

// recordSightings records queued token sightings until ctx is done. A
// sighting that cannot be recorded is logged and dropped: the till does not
// send it again.
func (in *Ingest) recordSightings(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case sg := <-in.sightings:
			rec, flagged, err := in.o.Store.SeeToken(sg, in.o.Clock.Now())
			if err != nil {
				in.log.Warn("member token sighting not recorded", "store", sg.Store, "terminal", sg.Terminal, "nonce", sg.Nonce, "err", err)
				continue
			}
			in.sightingsN.Add(1)
			if flagged {
				in.tokenFlags.Add(1)
				in.log.Warn("member token accepted at two stores; see tillsync-hub flags", "member", rec.Member, "nonce", rec.Nonce,
					"first_store", rec.First.Store, "first_terminal", rec.First.Terminal, "store", sg.Store, "terminal", sg.Terminal)
			}
		}
	}
}
