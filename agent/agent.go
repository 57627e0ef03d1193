// Package agent is tillsync-agent: the service beside a till. It wires the
// barcode scanner (agent/scanner), the POS's local API (agent/posapi), the
// durable outbox (agent/outbox) and the MQTT uplink to the hub
// (agent/uplink), and holds the till's rules for earning, burning and
// reversing points.
//
// The uplink speaks MQTT over TLS to a tls:// hub and verifies the hub's
// certificate against Options.HubCA (HubTLSConfig; never skipped). Which
// hubs may be reached in plain MQTT is the configuration's rule
// (agent/config), not this package's: tests run plain on loopback. Health
// carries why the hub is unreachable (hub_error), e.g. a certificate the
// till does not trust.
//
// The path of a transaction: the POS calls the API; the agent validates and
// prices it, commits it to the outbox (fsync) and only then answers; the
// uplink publishes the outbox and deletes an entry when the hub's ack for
// its id arrives (a "held" ack deletes nothing: the hub recorded nothing,
// and the transaction is sent again). Earns and reverses are accepted at
// the till, online or not.
//
// Earns are priced with the partner's earn rules the hub pushes (a
// protocol.Config, kept in the outbox so a till restarted offline still has
// them), exactly as the hub will book them; until the first config arrives,
// with the local EarnRate.
//
// An enrolled till (tillsync-agent enroll; enrollment.go) connects with
// the MQTT credentials of its enrollment, as the terminal it enrolled as,
// and seals its messages with the enrollment's MAC key, refusing acks and
// balance replies that are not sealed with it (agent/uplink; health:
// mac_refused): with an external broker, anybody who can publish on the
// till's ack topic could otherwise make it delete unsynced transactions.
// It also takes only store configs the hub signed with a coalition key it
// trusts — the member token keys of its enrollment, and those of the newest
// config it verified — and keeps the config it has otherwise (health:
// config_refused): a forged config could hand it member token keys of a
// stranger's, or earn rules to quote by. A till that has not enrolled has
// no key to check a config with and takes it as it comes.
//
// A scan gives the POS a member: from a member card, or from a member QR
// token (the member app's signed, rotating code), which the till verifies
// offline with the coalition's keys from the same config and refuses when
// expired, forged or already used at this till, each with its own code in
// the scan event (token.go).
//
// A burn needs the hub's verdict and is two-phase: the agent commits a hold
// for the points, sends it at once, and the POS waits up to BurnTimeout for
// the ack. Applied: the burn is approved and, in the same outbox commit as
// the verdict, a capture completing the hold is queued. Rejected: declined
// with the hub's code. No answer in time (or held): declined, and a void
// releasing the hold goes through the outbox, so the ledger never keeps a
// burn the till declined.
//
// While the hub is unreachable a burn is decided by the till's offline
// policy (OfflinePolicy, modelled on card terminals' store-and-forward
// floor limits): approved only within the member's last balance from the
// hub less what this till has already burned offline for them, the
// member's offline allowance, this till's share of the store's offline
// exposure cap, and a maximum age of that balance. A decline names the
// limit it hit (offline_no_balance, offline_stale_balance, offline_balance,
// offline_member_limit, offline_store_cap) and writes nothing. An approved
// one is queued as a one-step burn marked offline; the hub books it when
// the till syncs, as a flagged overdraft if the member can no longer cover
// it. The check and the commit happen under one lock, so concurrent burns
// cannot overrun a limit, and the exposure (kept in memory, rebuilt from the
// outbox at start) is shown in health, with an alert when an offline burn
// waits longer than the policy's alert_after. The zero policy approves
// nothing offline: every such burn is declined "offline".
package agent

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/tillsync/tillsync/agent/outbox"
	"github.com/tillsync/tillsync/agent/posapi"
	"github.com/tillsync/tillsync/agent/scanner"
	"github.com/tillsync/tillsync/agent/uplink"
	"github.com/tillsync/tillsync/internal/clock"
	"github.com/tillsync/tillsync/protocol"
)

// OutboxFile is the outbox's file name inside the data dir.
const OutboxFile = "outbox.db"

// MaxEarnRate bounds Options.EarnRate, so pricing can never overflow.
const MaxEarnRate = 10_000

// Options configures an Agent. DataDir, Broker, Store, Terminal, Partner and
// POSListener are required.
type Options struct {
	// DataDir holds the outbox; created owner-only if missing.
	DataDir string
	// Broker is the hub's MQTT address: tls://hub.example:8883 (also ssl://
	// or mqtts://) for MQTT over TLS, or tcp://host:port for plain MQTT.
	Broker string
	// HubCA is the PEM certificate of the CA the hub's certificate must
	// chain to on a TLS broker (the hub's own CA, from enrollment or
	// `tillsync-hub tls ca`). Empty: the system's roots.
	HubCA []byte
	// Store, Terminal and Partner identify this till and its brand. In an
	// enrolled data dir (EnrollmentFile) Store and Terminal must be the
	// enrolled ones; left out, all three come from the enrollment.
	Store, Terminal, Partner string
	// Username and Password are the till's MQTT credentials. Left out, an
	// enrolled till uses those in its data dir (EnrollmentFile); a till
	// that has not enrolled connects without any.
	Username, Password string
	// EarnRate is the points earned per 100 minor units of the purchase
	// (1 point per euro at the default of 1; 0 means the default), rounded
	// down, while the till has no earn rules from the hub (no config yet, or
	// a config without rules). The hub's rules replace it once they arrive.
	EarnRate int64
	// BurnTimeout bounds the wait for the hub's verdict on a burn; default 3s.
	BurnTimeout time.Duration
	// POSListener is where the POS API is served (loopback in production).
	POSListener net.Listener
	// POSSecret, when set (at least posapi.MinSecretLen characters), is the
	// shared secret every POS API request must carry as a bearer token.
	POSSecret string
	// ScannerPort is the serial port of the barcode scanner; "" for none,
	// or for one chosen by ScannerUSB.
	ScannerPort string
	// ScannerUSB chooses the scanner by USB VID/PID (and serial number)
	// when ScannerPort is "": it is found again under a new port name after
	// an unplug.
	ScannerUSB scanner.USBMatch
	// ScannerBaud defaults to 9600.
	ScannerBaud int
	// MemberCheck is the check digit of the coalition's member card
	// numbers; "" or none accepts any valid id.
	MemberCheck scanner.CheckDigit
	// TokenLeeway is how far past its expiry a member QR token is still
	// accepted, for a till clock behind the hub's; 0 means
	// protocol.DefaultTokenLeeway (1 minute), at most
	// protocol.MaxTokenLifetime.
	TokenLeeway time.Duration
	// Offline bounds the burns approved while the hub is unreachable; the
	// zero policy approves none.
	Offline OfflinePolicy
	// Uplink tuning; zero values take the uplink's defaults.
	Window, BatchMax int
	AckTimeout       time.Duration
	// BackoffMax caps the wait between attempts to reach the hub.
	BackoffMax time.Duration
	// Version is reported in health.
	Version string
	// Logger defaults to discarding; Clock to the real one.
	Logger *slog.Logger
	Clock  clock.Clock
}

// Agent is one till's agent. Make it with New, run it with Run.
type Agent struct {
	o Options
	// enrollKeys are the member token keys from enrollment, for until the
	// hub's config arrives with its own; and, with verifyConfigs, the keys
	// a config must be signed with (or with those of a verified config).
	enrollKeys []ed25519.PublicKey
	log        *slog.Logger
	clk        clock.Clock
	ob         *outbox.Outbox
	up         *uplink.Uplink
	ids        idGen

	// enrolled: the data dir holds an enrollment. verifyConfigs: with
	// keys from it, so the till takes only signed configs
	// (uplink.Options.ConfigKeys).
	enrolled, verifyConfigs bool

	wmu     sync.Mutex
	waiters map[string]chan protocol.Ack // burn id -> its verdict

	scans scanLog

	smu     sync.Mutex
	scanner posapi.Scanner

	rmu       sync.Mutex
	rejected  int64                // transactions accepted here that the hub rejected
	lastRejct *posapi.HubRejection // the latest of them
	held      int64                // held answers received
	lastHeld  *posapi.HubHeld      // the latest of them
	heldCode  protocol.Code        // code of the last held answer logged at WARN

	cmu         sync.Mutex
	cfg         *protocol.Config // the hub's config in use; nil until one arrives. Never modified once set.
	cfgVerified bool             // cfg's signature was verified with keys the till trusts

	off offlineBook // offline burns not yet acked by the hub

	rvmu sync.Mutex // one reverse priced and committed at a time
}

// New checks the options and opens the outbox. The error names the problem
// in one line.
func New(o Options) (*Agent, error) {
	if o.DataDir == "" {
		return nil, errors.New("agent: no data dir")
	}
	enr, enrolled, err := LoadEnrollment(o.DataDir)
	if err != nil {
		return nil, err
	}
	if enrolled {
		// An enrolled till is the terminal it enrolled as: what the
		// options leave out comes from the enrollment, and what they name
		// must agree with it.
		if o.Store == "" && o.Terminal == "" {
			o.Store, o.Terminal = enr.Store, enr.Terminal
		}
		if o.Partner == "" {
			o.Partner = enr.Partner
		}
		if enr.Store != o.Store || enr.Terminal != o.Terminal {
			return nil, fmt.Errorf("agent: the data dir is enrolled as %s/%s, not %s/%s; use the store and terminal it enrolled as, or another data dir", enr.Store, enr.Terminal, o.Store, o.Terminal)
		}
		if o.Username == "" {
			o.Username, o.Password = enr.Username, enr.Password
		}
	}
	for _, f := range [...]struct{ name, v string }{{"store", o.Store}, {"terminal", o.Terminal}, {"partner", o.Partner}} {
		if !protocol.ValidID(f.v) {
			return nil, fmt.Errorf("agent: %s %q is not a valid id (1-64 characters of A-Z a-z 0-9 . _ -)", f.name, f.v)
		}
	}
	if o.POSListener == nil {
		return nil, errors.New("agent: no POS API listener")
	}
	if o.EarnRate == 0 {
		o.EarnRate = 1
	}
	if o.EarnRate < 1 || o.EarnRate > MaxEarnRate {
		return nil, fmt.Errorf("agent: earn rate %d is out of range (1 to %d points per 100 minor units)", o.EarnRate, MaxEarnRate)
	}
	if o.BurnTimeout <= 0 {
		o.BurnTimeout = 3 * time.Second
	}
	if o.TokenLeeway == 0 {
		o.TokenLeeway = protocol.DefaultTokenLeeway
	}
	if o.TokenLeeway < 0 || o.TokenLeeway > protocol.MaxTokenLifetime {
		return nil, fmt.Errorf("agent: token leeway %s is out of range (0 to %s)", o.TokenLeeway, protocol.MaxTokenLifetime)
	}
	if o.POSSecret != "" && len(o.POSSecret) < posapi.MinSecretLen {
		return nil, fmt.Errorf("agent: the POS API secret is %d characters; use at least %d", len(o.POSSecret), posapi.MinSecretLen)
	}
	if err := o.Offline.Validate(); err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	o.Offline = o.Offline.withDefaults()
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	o.Clock = clock.Or(o.Clock)
	if err := os.MkdirAll(o.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("agent: data dir: %w", err)
	}
	ob, err := outbox.Open(filepath.Join(o.DataDir, OutboxFile), outbox.Options{Logger: o.Logger})
	if err != nil {
		return nil, err
	}
	a := &Agent{o: o, log: o.Logger.With("store", o.Store, "terminal", o.Terminal), clk: o.Clock, ob: ob, waiters: map[string]chan protocol.Ack{}}
	a.scans.init()
	a.scanner.Port = o.ScannerPort
	if !o.ScannerUSB.IsZero() {
		if err := o.ScannerUSB.Validate(); err != nil {
			return nil, fmt.Errorf("agent: scanner: %w", err)
		}
		a.scanner.USB = o.ScannerUSB.String()
	}
	if _, err := scanner.ParseCheckDigit(string(o.MemberCheck)); err != nil {
		return nil, fmt.Errorf("agent: member cards: %w", err)
	}
	a.loadConfig()
	offline, err := ob.OfflineBurns()
	if err != nil {
		ob.Close()
		return nil, err
	}
	a.off.load(offline)
	if err := a.useEnrollment(enr, enrolled); err != nil {
		ob.Close()
		return nil, err
	}
	var configKeys []ed25519.PublicKey
	var trusted *protocol.Config
	a.enrolled = enrolled
	if a.verifyConfigs = enrolled && len(a.enrollKeys) > 0; a.verifyConfigs {
		configKeys = a.enrollKeys
		if a.cfgVerified {
			trusted = a.cfg
		}
	}
	tlsCfg, err := HubTLSConfig(o.Broker, a.o.HubCA)
	if err != nil {
		ob.Close()
		return nil, err
	}
	macKey, err := enr.Key()
	if err != nil {
		ob.Close()
		return nil, err
	}
	a.up, err = uplink.New(uplink.Options{
		Broker: o.Broker, TLS: tlsCfg, Username: a.o.Username, Password: a.o.Password, MACKey: macKey,
		ConfigKeys: configKeys, TrustedConfig: trusted,
		Store: o.Store, Terminal: o.Terminal, Partner: o.Partner, Outbox: ob,
		Window: o.Window, BatchMax: o.BatchMax, AckTimeout: o.AckTimeout, BackoffMax: o.BackoffMax,
		OnAck: a.onAck, OnHeld: a.onHeld, OnConfig: a.onConfig, Logger: a.log, Clock: o.Clock,
		Status: a.status, NextSession: ob.NextSession,
	})
	if err != nil {
		ob.Close()
		return nil, err
	}
	return a, nil
}

// Outbox gives tests and tools read access to the outbox.
func (a *Agent) Outbox() *outbox.Outbox { return a.ob }

// Run serves the POS API, reads the scanner and syncs with the hub until ctx
// is done, then stops them in that order and closes the outbox. It returns
// an error when the POS API cannot be served.
func (a *Agent) Run(ctx context.Context) error {
	defer a.ob.Close()
	if err := a.recoverBurns(); err != nil {
		return err
	}
	a.log.Info("agent running", "broker", a.o.Broker, "pos_api", a.o.POSListener.Addr().String(), "scanner", a.o.ScannerPort)
	if a.enrolled && !a.verifyConfigs {
		a.log.Warn("the enrollment holds no member token keys, so store configs are taken without checking the hub's signature; enroll the till again to have them checked")
	}

	syncCtx, stopSync := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	wg.Go(func() { a.up.Run(syncCtx) })
	wg.Go(func() { a.watchOffline(syncCtx) })
	wg.Go(func() { a.sweepBurns(syncCtx) })
	if a.o.ScannerPort != "" || !a.o.ScannerUSB.IsZero() {
		wg.Go(func() {
			err := scanner.Run(syncCtx, scanner.Options{
				Port: a.o.ScannerPort, Match: a.o.ScannerUSB, Baud: a.o.ScannerBaud, Logger: a.log, Clock: a.clk,
				OnScan: a.onScan, OnStatus: a.onScannerStatus,
			})
			if err != nil {
				a.log.Error("scanner stopped", "err", err)
			}
		})
	}
	err := posapi.Serve(ctx, a.o.POSListener, a, a.withMetrics(posapi.Options{Logger: a.log, Secret: a.o.POSSecret}))
	stopSync()
	wg.Wait()
	a.log.Info("agent stopped")
	return err
}

// recoverBurns declines the burns (holds, or one-step burns queued by an
// older agent) left pending by a crash or kill: their POS request never got
// an answer, so each gets a void. Run again while the agent runs, it takes
// only burns no request is waiting on: one whose verdict could not be
// recorded (a disk error) when its request ended.
func (a *Agent) recoverBurns() error {
	ids, err := a.ob.PendingBurns()
	if err != nil {
		return err
	}
	for _, id := range ids {
		a.wmu.Lock()
		_, waiting := a.waiters[id]
		a.wmu.Unlock()
		if waiting {
			continue
		}
		l, _, err := a.ob.Local(id)
		if err != nil {
			return err
		}
		res := posapi.Result{Status: "declined", Code: protocol.CodeTimeout, TxID: id, Kind: string(protocol.KindBurn), Member: l.Member, Points: l.Points}
		if _, err := a.ob.DecideBurn(id, mustJSON(res), false, a.void(id, l.Member)); err != nil {
			return err
		}
		a.log.Warn("declined a burn left without a recorded verdict; voiding it", "tx", id)
		a.up.Kick()
	}
	return nil
}

func (a *Agent) onAck(ack protocol.Ack) {
	a.off.remove(ack.ID) // an offline burn the hub has booked (or refused) is no longer exposure
	a.wmu.Lock()
	ch := a.waiters[ack.ID]
	a.wmu.Unlock()
	if ch != nil {
		select {
		case ch <- ack:
		default:
		}
		return
	}
	if ack.Final() != protocol.StatusRejected {
		return
	}
	// A transaction the POS was told was accepted (or a burn already decided)
	// was refused by the hub. Its answer is final, so it leaves the outbox;
	// an operator must see it.
	l, _, err := a.ob.Local(ack.ID)
	if err != nil {
		a.log.Error("local record of a rejected transaction", "tx", ack.ID, "err", err)
	}
	if l.Kind == protocol.KindBurn || l.Kind == protocol.KindHold {
		return // a burn the till declined (or voided): the POS already knows
	}
	a.log.Error("hub rejected a transaction this till accepted", "tx", ack.ID, "kind", l.Kind, "code", ack.Code)
	a.rmu.Lock()
	a.rejected++
	a.lastRejct = &posapi.HubRejection{TxID: ack.ID, Kind: string(l.Kind), Code: ack.Code, At: a.clk.Now()}
	a.rmu.Unlock()
}

// onHeld counts a held answer and hands it to a burn waiting for it. The
// transaction stays in the outbox and the uplink sends it again. A store not
// yet registered is held on every re-send, so the log says so once per
// change of code, not once per transaction.
func (a *Agent) onHeld(ack protocol.Ack) {
	a.wmu.Lock()
	ch := a.waiters[ack.ID]
	a.wmu.Unlock()
	if ch != nil {
		select {
		case ch <- ack:
		default:
		}
	}
	a.rmu.Lock()
	a.held++
	a.lastHeld = &posapi.HubHeld{TxID: ack.ID, Code: ack.Code, At: a.clk.Now()}
	changed := ack.Code != a.heldCode
	a.heldCode = ack.Code
	a.rmu.Unlock()
	lvl := slog.LevelDebug
	if changed {
		lvl = slog.LevelWarn
	}
	a.log.Log(context.Background(), lvl, "hub holds a transaction without recording it; it stays in the outbox and is sent again", "tx", ack.ID, "code", ack.Code)
}

// loadConfig takes the config the outbox kept from an earlier run, and
// whether it was verified. A stored config that cannot be read is left
// aside: the till prices with EarnRate until the hub sends its config
// again.
func (a *Agent) loadConfig() {
	cfg, verified, err := a.ob.Config()
	if err != nil {
		a.log.Warn("ignoring the stored earn rules config; pricing with the local earn rate until the hub sends it again", "err", err)
		return
	}
	if cfg == nil {
		return
	}
	a.cfg, a.cfgVerified = cfg, verified
	a.log.Info("earn rules loaded from the outbox", "published_at", cfg.PublishedAt, "rules_version", rulesVersion(cfg, a.clk.Now()))
}

// onConfig takes a config from the hub (already checked by the uplink for
// this store and partner, and with verifyConfigs its signature) when it is
// newer than the one in use, keeping it in the outbox first so that a
// restart, even offline, prices with it. A verified config replaces one
// that was not (kept before the till verified configs) whatever their
// times.
func (a *Agent) onConfig(cfg protocol.Config) {
	verified := a.verifyConfigs
	a.cmu.Lock()
	cur, curVerified := a.cfg, a.cfgVerified
	a.cmu.Unlock()
	if cur != nil && !cfg.PublishedAt.After(cur.PublishedAt) && (curVerified || !verified) {
		if cfg.PublishedAt.Before(cur.PublishedAt) {
			a.log.Warn("ignoring an earn rules config older than the one in use", "published_at", cfg.PublishedAt, "in_use", cur.PublishedAt)
		}
		return // the retained config again, on a reconnect
	}
	if _, err := a.ob.SaveConfig(&cfg, verified); err != nil {
		// Priced with it all the same: the hub books by these rules.
		a.log.Error("could not keep the hub's earn rules config in the outbox; a restart would price with the previous one", "err", err)
	}
	a.cmu.Lock()
	a.cfg, a.cfgVerified = &cfg, verified
	a.cmu.Unlock()
	a.log.Info("earn rules from the hub", "published_at", cfg.PublishedAt, "rules_version", rulesVersion(&cfg, a.clk.Now()), "versions", len(cfg.Rules))
}

// config returns the config in use, nil when none.
func (a *Agent) config() *protocol.Config {
	a.cmu.Lock()
	defer a.cmu.Unlock()
	return a.cfg
}

// rulesVersion is the version of cfg's rules in force at t, 0 when none.
func rulesVersion(cfg *protocol.Config, t time.Time) int64 {
	if cfg == nil {
		return 0
	}
	if rs := protocol.SelectRules(cfg.Rules, t); rs != nil {
		return rs.Version
	}
	return 0
}

func (a *Agent) newTx(kind protocol.Kind, member string) protocol.Transaction {
	now := a.clk.Now().UTC()
	return protocol.Transaction{
		ID: a.ids.next(now), Store: a.o.Store, Terminal: a.o.Terminal, Partner: a.o.Partner,
		Member: member, Kind: kind, CreatedAt: now,
	}
}

func (a *Agent) void(burnID, member string) *protocol.Transaction {
	v := a.newTx(protocol.KindVoid, member)
	v.Original = burnID
	return &v
}

// capture completes an approved hold: the same points, amount and receipt.
func (a *Agent) capture(hold *protocol.Transaction) *protocol.Transaction {
	c := a.newTx(protocol.KindCapture, hold.Member)
	c.Original = hold.ID
	c.Points, c.Amount, c.Currency, c.Receipt = hold.Points, hold.Amount, hold.Currency, hold.Receipt
	return &c
}

// repeat answers a request whose Idempotency-Key was seen before.
func repeat(rec outbox.IdemRecord, hash string) (posapi.Result, error) {
	if rec.Hash != hash {
		return posapi.Result{}, protocol.Errorf(posapi.CodeIdempotencyConflict, "Idempotency-Key", "already used for a different request")
	}
	if rec.Pending {
		return posapi.Result{}, protocol.Errorf(posapi.CodeInProgress, "Idempotency-Key", "the first request with this key is still waiting for the hub")
	}
	var res posapi.Result
	if err := json.Unmarshal(rec.Response, &res); err != nil {
		return posapi.Result{}, fmt.Errorf("agent: stored answer for %s: %w", rec.TxID, err)
	}
	return res, nil
}

// seen looks up an Idempotency-Key; ok is true when the request was answered before.
func (a *Agent) seen(key, hash string) (posapi.Result, bool, error) {
	if key == "" {
		return posapi.Result{}, false, nil
	}
	rec, found, err := a.ob.Idem(key)
	if err != nil || !found {
		return posapi.Result{}, false, err
	}
	res, err := repeat(rec, hash)
	return res, true, err
}

// commit appends tx with its idempotency record; a key that raced in between
// gets the stored answer.
func (a *Agent) commit(tx *protocol.Transaction, key, hash string, res *posapi.Result, pendingBurn bool) (posapi.Result, bool, error) {
	rec := &outbox.IdemRecord{Hash: hash, TxID: tx.ID, Pending: pendingBurn}
	if !pendingBurn {
		rec.Response = mustJSON(res)
	}
	err := a.ob.Append(tx, key, rec, pendingBurn)
	var ie *outbox.IdemExistsError
	if errors.As(err, &ie) {
		r, err := repeat(ie.Record, hash)
		return r, true, err
	}
	return posapi.Result{}, false, err
}

// Earn accepts points for a purchase: committed at the till, online or not.
// It is priced with the partner's rules from the hub's config in force at
// its creation, as the hub will book it; without rules, with EarnRate.
func (a *Agent) Earn(ctx context.Context, key, hash string, r posapi.EarnRequest) (posapi.Result, error) {
	if res, ok, err := a.seen(key, hash); ok || err != nil {
		return res, err
	}
	tx := a.newTx(protocol.KindEarn, r.Member)
	tx.Amount, tx.Currency, tx.Receipt, tx.Lines = r.Amount, r.Currency, r.Receipt, r.Lines
	cfg := a.config()
	if cfg != nil && tx.Currency == "" {
		tx.Currency = cfg.Currency
	}
	var quote *posapi.Quote
	if cfg != nil {
		if rs := protocol.SelectRules(cfg.Rules, tx.CreatedAt); rs != nil {
			// Price trusts a valid transaction (lines adding up, amounts in range).
			tx.Seq = 1 // assigned for real by the outbox
			if err := tx.Validate(); err != nil {
				return posapi.Result{}, err
			}
			q, err := rs.Price(&tx, false)
			if err != nil {
				return posapi.Result{}, err // currency_mismatch, invalid_points: nothing stored
			}
			tx.Points, tx.RulesVersion = q.Points, q.RulesVersion
			quote = &posapi.Quote{RulesVersion: q.RulesVersion, Base: q.Base, Bonus: q.Bonus, Campaigns: q.Campaigns}
		}
	}
	if quote == nil && r.Amount > 0 && r.Amount <= protocol.MaxAmount {
		tx.Points = r.Amount / 100 * a.o.EarnRate
		tx.Points += r.Amount % 100 * a.o.EarnRate / 100
	}
	res := posapi.Result{Status: "accepted", TxID: tx.ID, Kind: string(tx.Kind), Member: tx.Member, Points: tx.Points, CreatedAt: tx.CreatedAt, Quote: quote}
	if prev, dup, err := a.commit(&tx, key, hash, &res, false); dup || err != nil {
		return prev, err
	}
	a.up.Kick()
	a.log.Debug("earn accepted", "tx", tx.ID, "points", tx.Points, "rules_version", tx.RulesVersion)
	return res, nil
}

// checkCurrency refuses an amount in another currency than the
// coalition's, once the hub's config has said which that is. An earn's is
// checked by its pricing; a burn's and a return's are checked here: the
// hub books a return's share of its sale by the amounts alone, so a return
// in dollars of a sale in euros would take back the wrong points.
func (a *Agent) checkCurrency(currency string) error {
	cfg := a.config()
	if cfg == nil || cfg.Currency == "" || currency == "" || currency == cfg.Currency {
		return nil
	}
	return protocol.Errorf(protocol.CodeCurrencyMismatch, "currency", "%s, the coalition's currency is %s", currency, cfg.Currency)
}

// Reverse accepts a return against an earlier earn or burn.
func (a *Agent) Reverse(ctx context.Context, key, hash string, r posapi.ReverseRequest) (posapi.Result, error) {
	if res, ok, err := a.seen(key, hash); ok || err != nil {
		return res, err
	}
	if !protocol.ValidID(r.Original) {
		return posapi.Result{}, protocol.Errorf(protocol.CodeInvalidID, "original", "must be the tx_id of an earn or burn")
	}
	if r.Points < 0 {
		return posapi.Result{}, protocol.Errorf(protocol.CodeInvalidPoints, "points", "must not be negative")
	}
	if r.Amount < 0 {
		return posapi.Result{}, protocol.Errorf(protocol.CodeInvalidAmount, "amount", "must not be negative")
	}
	member, points := r.Member, r.Points
	// Reverses of one original are priced and committed one at a time:
	// a return's share depends on those before it.
	a.rvmu.Lock()
	defer a.rvmu.Unlock()
	l, found, err := a.ob.Local(r.Original)
	if err != nil {
		return posapi.Result{}, err
	}
	switch {
	case found:
		if member != "" && member != l.Member {
			return posapi.Result{}, protocol.Errorf(protocol.CodeOriginalMismatch, "member", "%s was made for another member", r.Original)
		}
		member = l.Member
		switch {
		case r.Amount > 0 && l.Amount > 0:
			// By amount: the hub books the share of the sale's points, on
			// the running total of what has been returned.
			share, err := l.ReturnPoints(r.Amount)
			if err != nil {
				return posapi.Result{}, err
			}
			if points != 0 && points != share {
				return posapi.Result{}, protocol.Errorf(protocol.CodeInvalidPoints, "points", "a return of %d takes back its share of %s, %d points; leave points out", r.Amount, r.Original, share)
			}
			points = share
		case points == 0:
			points = l.Points - l.Reversed
			if points <= 0 {
				return posapi.Result{}, protocol.Errorf(protocol.CodeOverReversed, "points", "nothing left to reverse of %s", r.Original)
			}
		}
	case member == "" || (points == 0 && r.Amount == 0):
		return posapi.Result{}, protocol.Errorf(protocol.CodeUnknownOriginal, "original", "%s was not made at this till; give member, and points or amount, to reverse it", r.Original)
	}
	tx := a.newTx(protocol.KindReverse, member)
	tx.Original, tx.Points, tx.Amount, tx.Currency, tx.Receipt = r.Original, points, r.Amount, r.Currency, r.Receipt
	tx.Seq = 1 // assigned for real by the outbox; here only to validate early
	if err := tx.Validate(); err != nil {
		return posapi.Result{}, err
	}
	if err := a.checkCurrency(tx.Currency); err != nil {
		return posapi.Result{}, err
	}
	res := posapi.Result{Status: "accepted", TxID: tx.ID, Kind: string(tx.Kind), Member: member, Points: points, CreatedAt: tx.CreatedAt}
	if prev, dup, err := a.commit(&tx, key, hash, &res, false); dup || err != nil {
		return prev, err
	}
	a.up.Kick()
	return res, nil
}

// Burn redeems points, with the hub's verdict, in two phases: a hold for
// the points goes to the hub; when the hub applies it the burn is approved
// and a capture of the hold is queued in the same commit as the verdict.
// The POS knows the burn by the hold's id (tx_id); a reverse naming it goes
// to the hub as is, which resolves the hold to its capture.
func (a *Agent) Burn(ctx context.Context, key, hash string, r posapi.BurnRequest) (posapi.Result, error) {
	if res, ok, err := a.seen(key, hash); ok || err != nil {
		return res, err
	}
	tx := a.newTx(protocol.KindBurn, r.Member)
	tx.Points, tx.Amount, tx.Currency, tx.Receipt = r.Points, r.Amount, r.Currency, r.Receipt
	tx.Seq = 1 // checked for real by the outbox; here only to validate early
	if err := tx.Validate(); err != nil {
		return posapi.Result{}, err // as the burn the POS asked for: the hold obeys the same rules
	}
	if err := a.checkCurrency(tx.Currency); err != nil {
		return posapi.Result{}, err
	}
	tx.Kind = protocol.KindHold
	// The POS asked for a burn; that the hub sees a hold and a capture is ours.
	res := posapi.Result{TxID: tx.ID, Kind: string(protocol.KindBurn), Member: tx.Member, Points: tx.Points, CreatedAt: tx.CreatedAt}
	if !a.up.Connected() {
		return a.burnOffline(&tx, key, hash, res)
	}
	verdict := make(chan protocol.Ack, 1)
	a.wmu.Lock()
	a.waiters[tx.ID] = verdict
	a.wmu.Unlock()
	defer func() {
		a.wmu.Lock()
		delete(a.waiters, tx.ID)
		a.wmu.Unlock()
	}()
	if prev, dup, err := a.commit(&tx, key, hash, &res, true); dup || err != nil {
		return prev, err
	}
	a.up.Urgent(tx) // ahead of any backlog: the cashier is waiting

	timer := time.NewTimer(a.o.BurnTimeout)
	defer timer.Stop()
	var next *protocol.Transaction // the capture on approval, the void on a decline the hub may not know of
	select {
	case ack := <-verdict:
		switch ack.Final() {
		case protocol.StatusApplied:
			bal := ack.Balance
			res.Status, res.Balance = "approved", &bal
			next = a.capture(&tx)
		case protocol.StatusHeld:
			// The hub recorded nothing and the hold stays queued, to be sent
			// again: the void makes sure it never takes the points.
			res.Status, res.Code = "declined", ack.Code
			next = a.void(tx.ID, tx.Member)
		default:
			bal := ack.Balance
			res.Status, res.Code, res.Balance = "declined", ack.Code, &bal
		}
	case <-timer.C:
		res.Status, res.Code = "declined", protocol.CodeTimeout
		next = a.void(tx.ID, tx.Member)
	case <-ctx.Done():
		res.Status, res.Code = "declined", protocol.CodeTimeout
		next = a.void(tx.ID, tx.Member)
	}
	if _, err := a.ob.DecideBurn(tx.ID, mustJSON(res), res.Status == "approved", next); err != nil {
		a.log.Error("could not record a burn verdict; the burn will be declined and voided by the next sweep", "tx", tx.ID, "err", err)
		return posapi.Result{}, err
	}
	if next != nil {
		a.up.Kick()
	}
	switch {
	case next == nil:
	case next.Kind == protocol.KindCapture:
		a.log.Debug("burn approved; capturing the hold", "tx", tx.ID, "capture", next.ID, "points", tx.Points)
	case res.Code == protocol.CodeTimeout:
		a.log.Warn("burn declined: no answer from the hub in time; voiding it", "tx", tx.ID, "timeout", a.o.BurnTimeout.String())
	default:
		a.log.Warn("burn declined: the hub held it without recording it; voiding it", "tx", tx.ID, "code", res.Code)
	}
	return res, nil
}

// burnOffline decides a burn while the hub is unreachable, by the offline
// policy alone. Approved, it is committed as a one-step burn marked offline,
// which the hub books when the till syncs (as a flagged overdraft if the
// member can no longer cover it). Declined, nothing is written: the decline
// is not remembered under the idempotency key, so a retry once the hub is
// back gets a fresh verdict.
func (a *Agent) burnOffline(tx *protocol.Transaction, key, hash string, res posapi.Result) (posapi.Result, error) {
	p := a.o.Offline
	if !p.Enabled() {
		res.Status, res.Code, res.TxID = "declined", protocol.CodeOffline, ""
		return res, nil
	}
	a.off.mu.Lock()
	defer a.off.mu.Unlock()
	c, found, err := a.ob.CachedBalance(tx.Member)
	if err != nil {
		return posapi.Result{}, err
	}
	code, estimate, known := p.check(&a.off, tx.Member, tx.Points, c, found, a.clk.Now())
	if code != "" {
		res.Status, res.Code, res.TxID = "declined", code, ""
		if known {
			res.Balance = &estimate
		}
		a.log.Info("burn declined offline", "code", code, "points", tx.Points)
		return res, nil
	}
	tx.Kind, tx.Offline = protocol.KindBurn, true
	left := estimate - tx.Points
	res.Status, res.Offline, res.Balance = "approved", true, &left
	if prev, dup, err := a.commit(tx, key, hash, &res, false); dup || err != nil {
		return prev, err
	}
	a.off.burns[tx.ID] = offlineBurn{member: tx.Member, points: tx.Points, at: tx.CreatedAt}
	a.up.Kick()
	a.log.Info("burn approved offline; the hub books it when the till syncs", "tx", tx.ID, "points", tx.Points)
	return res, nil
}

// burnSweepEvery is how often the agent looks for burns left pending
// without a request waiting on them.
const burnSweepEvery = 30 * time.Second

// sweepBurns declines and voids, every burnSweepEvery, the burns whose
// verdict could not be recorded, so that their hold never takes the points
// and their idempotency key gets an answer.
func (a *Agent) sweepBurns(ctx context.Context) {
	t := time.NewTicker(burnSweepEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := a.recoverBurns(); err != nil {
				a.log.Error("sweeping burns left pending", "err", err)
			}
		}
	}
}

// Balance returns the member's balance from the hub when connected, else as
// the hub last reported it, with the points still in this till's outbox.
func (a *Agent) Balance(ctx context.Context, member string) (posapi.Balance, error) {
	b := posapi.Balance{Member: member}
	var err error
	if b.UnsyncedEarned, b.UnsyncedBurned, err = a.ob.PendingPoints(member, 100_000); err != nil {
		return b, err
	}
	if a.up.Connected() {
		qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		r, err := a.up.Query(qctx, member)
		cancel()
		if err == nil && r.Code == "" {
			b.Known, b.Points, b.Source, b.AsOf = r.Known, r.Balance, "hub", r.AsOf
			if r.Known {
				// The last known balance bounds offline burns for the member.
				if err := a.ob.SaveBalance(member, r.Balance, a.clk.Now()); err != nil {
					a.log.Warn("could not keep the member's balance for offline burns", "err", err)
				}
			}
			return b, nil
		}
		a.log.Warn("balance query to hub failed; answering from cache", "err", errOr(err, string(r.Code)))
	}
	c, found, err := a.ob.CachedBalance(member)
	if err != nil {
		return b, err
	}
	b.Known, b.Points, b.Source, b.AsOf = found, c.Points, "cache", c.AsOf
	return b, nil
}

// Health reports the hub connection, the backlog and the scanner.
func (a *Agent) Health(ctx context.Context) posapi.Health {
	h := posapi.Health{Store: a.o.Store, Terminal: a.o.Terminal, Version: a.o.Version, HubConnected: a.up.Connected()}
	if !h.HubConnected {
		h.HubError = a.up.LastError()
	}
	n, oldest, err := a.ob.Stats()
	if err != nil {
		a.log.Error("outbox stats", "err", err)
	}
	h.Backlog = n
	if !oldest.IsZero() {
		h.OldestUnsynced = oldest
		h.OldestUnsyncedSeconds = max(0, a.clk.Now().Sub(oldest).Seconds())
	}
	a.smu.Lock()
	h.Scanner = a.scanner
	a.smu.Unlock()
	a.rmu.Lock()
	h.HubRejections, h.LastHubRejection = a.rejected, a.lastRejct
	h.HubHeld, h.LastHubHeld = a.held, a.lastHeld
	a.rmu.Unlock()
	h.MACRefused, h.ConfigRefused = a.up.MACRefused(), a.up.ConfigRefused()
	h.MemberTokenKeys = len(a.tokenKeys())
	if cfg := a.config(); cfg != nil {
		h.RulesVersion, h.ConfigPublishedAt = rulesVersion(cfg, a.clk.Now()), cfg.PublishedAt
	}
	h.Offline = a.off.exposure(a.o.Offline, a.clk.Now())
	if d, ok := a.up.ClockOffset(); ok {
		ms := d.Milliseconds()
		h.ClockOffsetMS = &ms
	}
	return h
}

// Scans returns member scans after seq, waiting up to wait for one.
func (a *Agent) Scans(ctx context.Context, after uint64, wait time.Duration) []posapi.ScanEvent {
	return a.scans.after(ctx, after, wait)
}

// onScan offers a member id to the POS. Anything else is ignored and logged
// without its content: it may be personal, and a payment card number
// (scanned by mistake) is never kept anywhere — not in the scan log, not in
// the outbox, not in the log.
func (a *Agent) onScan(s scanner.Scan) {
	if token := strings.TrimSpace(s.Data); protocol.IsMemberToken(token) {
		a.scans.add(a.tokenScan(s, token)) // token.go
		return
	}
	member, err := scanner.MemberID(s, a.o.MemberCheck)
	if err != nil {
		a.smu.Lock()
		a.scanner.Refused++
		a.smu.Unlock()
		if errors.Is(err, scanner.ErrPaymentCard) {
			a.log.Warn("a payment card was scanned; refused, and its number is not kept", "symbology", s.Symbology)
			return
		}
		a.log.Warn("scan is not a member id; ignored", "symbology", s.Symbology, "len", len(s.Data), "code", protocol.CodeOf(err), "err", err)
		return
	}
	a.scans.add(posapi.ScanEvent{Member: member, Source: posapi.SourceCard, Symbology: s.Symbology, At: s.At})
}

// status is the agent's part of the status the uplink publishes to the
// hub (protocol.TerminalStatus); the uplink adds the session, backlog and
// clock offset. It reads what health reads, without touching the disk.
func (a *Agent) status() protocol.TerminalStatus {
	s := protocol.TerminalStatus{AgentVersion: a.o.Version}
	if len(s.AgentVersion) > protocol.MaxAgentVersionLen {
		s.AgentVersion = s.AgentVersion[:protocol.MaxAgentVersionLen]
	}
	if a.o.ScannerPort != "" || !a.o.ScannerUSB.IsZero() {
		a.smu.Lock()
		connected := a.scanner.Connected
		s.LastScan = a.scanner.LastScan
		a.smu.Unlock()
		s.ScannerConnected = &connected
	}
	e := a.off.exposure(a.o.Offline, a.clk.Now())
	s.OfflinePoints, s.OfflineBurns = e.Points, e.Burns
	if a.o.Offline.Enabled() {
		s.OfflineCap = a.o.Offline.TillCap()
	}
	return s
}

// onScannerStatus keeps the scanner's state for health and the status.
func (a *Agent) onScannerStatus(st scanner.Status) {
	defer a.up.StatusChanged()
	a.smu.Lock()
	defer a.smu.Unlock()
	refused := a.scanner.Refused
	a.scanner = posapi.Scanner{
		Port: st.Port, USB: st.USB, Connected: st.Connected, Since: st.Since,
		LastScan: st.LastScan, LastError: st.LastError, LastErrorAt: st.LastErrorAt,
		Reconnects: st.Reconnects, Scans: st.Scans, Refused: refused,
	}
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("agent: encode %T: %v", v, err)) // plain structs: cannot happen
	}
	return b
}

func errOr(err error, msg string) error {
	if err != nil {
		return err
	}
	return errors.New(msg)
}

// useEnrollment takes what an enrolled till needs from its data dir
// besides the credentials New took already: the hub's CA, when the broker
// is TLS and the options name none, and the member token keys handed out
// at enrollment, used until the hub's config brings its own.
func (a *Agent) useEnrollment(enr Enrollment, enrolled bool) error {
	if !enrolled {
		return nil
	}
	if len(a.o.HubCA) == 0 && IsTLSBroker(a.o.Broker) {
		ca, err := os.ReadFile(filepath.Join(a.o.DataDir, HubCAFile))
		switch {
		case err == nil:
			a.o.HubCA = ca
		case !errors.Is(err, fs.ErrNotExist):
			return fmt.Errorf("agent: the hub's CA from enrollment: %w", err)
		}
	}
	if len(enr.MemberTokenKeys) > 0 {
		keys, err := protocol.ParseTokenKeys(enr.MemberTokenKeys)
		if err != nil {
			return fmt.Errorf("agent: %s: member_token_keys: %w", EnrollmentFile, err)
		}
		a.enrollKeys = keys
	}
	return nil
}
