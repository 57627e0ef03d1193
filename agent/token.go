package agent

// Member tokens at the till: the signed, rotating QR codes of the member
// app (protocol.MintMemberToken). The till verifies them offline with the
// coalition's public keys from the hub's config, and refuses each bad one
// with its own code, which the POS reads in the scan event:
//
//   - token_unverifiable: no keys yet (no config from the hub, or one from
//     a hub before member tokens). Not token_forged: the code may well be
//     good, and the cashier should hear "ask for the card", not "fraud".
//   - token_malformed, token_forged, token_expired, token_lifetime: as
//     protocol.VerifyMemberToken says, with Options.TokenLeeway for the
//     till's clock.
//   - token_replayed: this till accepted the token before. Nonces are kept
//     in the outbox (durable: a restart does not reopen the door) until
//     the token could no longer verify, plus a margin for a clock stepped
//     back.
//
// An accepted token gives the POS its member like a card, and the till
// tells the hub it saw the token (a sighting), best effort: only while
// connected, never waited for, dropped when offline. The hub flags a token
// accepted at two stores; another till of the same store is not a replay
// here (the member may move to the next till) and not a flag there.

import (
	"context"
	"crypto/ed25519"
	"log/slog"

	"github.com/tillsync/tillsync/agent/posapi"
	"github.com/tillsync/tillsync/agent/scanner"
	"github.com/tillsync/tillsync/protocol"
)

// tokenKeepMargin is how long past the end of its leeway a token's nonce
// is remembered: a till whose clock is stepped back by up to this much
// still refuses a replay.
const tokenKeepMargin = protocol.MaxTokenLifetime

// tokenScan decides a scan whose data is a member token and returns the
// event for the POS.
func (a *Agent) tokenScan(s scanner.Scan, token string) posapi.ScanEvent {
	ev := posapi.ScanEvent{Source: posapi.SourceToken, Symbology: s.Symbology, At: s.At}
	mt, err := a.verifyToken(token)
	if err != nil {
		code := protocol.CodeOf(err)
		ev.Error = &posapi.ScanError{Code: code, Message: tokenRefusal(code)}
		lvl := slog.LevelWarn
		switch code {
		case protocol.CodeTokenExpired, protocol.CodeTokenReplayed:
			lvl = slog.LevelInfo // a member showing an old code: routine
		case protocol.CodeInternal:
			lvl = slog.LevelError
		}
		a.log.Log(context.Background(), lvl, "member token refused", "code", code, "err", err)
		return ev
	}
	ev.Member, ev.ExpiresAt = mt.Member, mt.ExpiresAt
	a.log.Debug("member token accepted", "nonce", mt.Nonce, "key_id", mt.KeyID)
	if err := a.up.PublishSighting(protocol.Sighting{Token: token, At: s.At}); err != nil {
		a.log.Debug("member token sighting not sent to the hub", "nonce", mt.Nonce, "err", err)
	}
	return ev
}

// tokenKeys returns the keys member tokens are verified with: those of the
// config in use, once the till has one it may trust (verified, or any at
// a till that does not verify configs), else those of its enrollment.
func (a *Agent) tokenKeys() []ed25519.PublicKey {
	a.cmu.Lock()
	cfg, trusted := a.cfg, a.cfgVerified || !a.verifyConfigs
	a.cmu.Unlock()
	if cfg != nil && trusted {
		keys, _ := cfg.TokenKeys() // valid: the config was checked when it arrived
		return keys
	}
	return a.enrollKeys
}

// verifyToken checks a token with tokenKeys and records its nonce,
// refusing one this till accepted before.
func (a *Agent) verifyToken(token string) (protocol.MemberToken, error) {
	keys := a.tokenKeys()
	if len(keys) == 0 {
		return protocol.MemberToken{}, protocol.Errorf(protocol.CodeTokenUnverifiable, "token", "this till has no member token keys from the hub yet")
	}
	now := a.clk.Now()
	mt, err := protocol.VerifyMemberToken(token, keys, now, a.o.TokenLeeway)
	if err != nil {
		return protocol.MemberToken{}, err
	}
	first, err := a.ob.SeeToken(mt.Nonce, mt.ExpiresAt.Add(a.o.TokenLeeway+tokenKeepMargin), now)
	if err != nil {
		return protocol.MemberToken{}, err
	}
	if !first {
		return protocol.MemberToken{}, protocol.Errorf(protocol.CodeTokenReplayed, "token", "token %s was accepted at this till before", mt.Nonce)
	}
	return mt, nil
}

// tokenRefusal is what the cashier is told about a refused token.
func tokenRefusal(code protocol.Code) string {
	switch code {
	case protocol.CodeTokenExpired:
		return "QR code expired: ask the member to refresh it in the app"
	case protocol.CodeTokenReplayed:
		return "QR code already used at this till: ask the member to refresh it in the app"
	case protocol.CodeTokenForged:
		return "QR code not issued by the coalition: ask for the member card"
	case protocol.CodeTokenMalformed:
		return "QR code not readable as a member code: ask the member to refresh it, or for the member card"
	case protocol.CodeTokenLifetime:
		return "QR code valid for longer than allowed: this till's clock may be wrong; ask for the member card"
	case protocol.CodeTokenUnverifiable:
		return "this till cannot check member QR codes yet (no keys from the hub): ask for the member card"
	}
	return "QR code could not be checked (see the agent log): ask for the member card"
}
