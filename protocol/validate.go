package protocol

import (
	"strings"
	"time"
)

// Earliest and latest created_at accepted: a till whose clock says 1970 or
// 2200 is broken, and the ledger must not date points by it.
var (
	minCreatedAt = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	maxCreatedAt = time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)
)

// Validate checks every field of t on its own (not against the ledger) and
// returns the first problem as an *Error carrying a stable Code, or nil.
func (t *Transaction) Validate() error {
	for _, f := range [...]struct{ name, v string }{
		{"id", t.ID}, {"store", t.Store}, {"terminal", t.Terminal},
		{"partner", t.Partner}, {"member", t.Member},
	} {
		if err := checkID(f.name, f.v); err != nil {
			return err
		}
	}
	if t.Receipt != "" && !ValidID(t.Receipt) {
		return Errorf(CodeInvalidID, "receipt", "must be 1-%d characters of A-Z a-z 0-9 . _ -", MaxIDLen)
	}
	if t.Seq == 0 {
		return Errorf(CodeInvalidSeq, "seq", "must be 1 or more")
	}
	if t.CreatedAt.IsZero() {
		return Errorf(CodeMissingField, "created_at", "is required")
	}
	if t.CreatedAt.Before(minCreatedAt) || !t.CreatedAt.Before(maxCreatedAt) {
		return Errorf(CodeInvalidTime, "created_at", "must be between 2000 and 2100")
	}
	if t.Amount < 0 || t.Amount > MaxAmount {
		return Errorf(CodeInvalidAmount, "amount", "must be 0 to %d minor units", int64(MaxAmount))
	}
	if t.Points < 0 || t.Points > MaxPoints {
		return Errorf(CodeInvalidPoints, "points", "must be 0 to %d", MaxPoints)
	}
	if t.Currency != "" || t.Amount != 0 {
		if !validCurrency(t.Currency) {
			return Errorf(CodeInvalidCurrency, "currency", "must be an ISO 4217 code such as EUR")
		}
	}
	if t.Offline && t.Kind != KindBurn {
		return Errorf(CodeInvalidKind, "offline", "only a burn is approved offline")
	}
	if t.RulesVersion < 0 {
		return Errorf(CodeInvalidRules, "rules_version", "must not be negative")
	}
	if len(t.Lines) > 0 && t.Kind != KindEarn {
		return Errorf(CodeInvalidLines, "lines", "only an earn carries line items")
	}
	switch t.Kind {
	case KindEarn:
		if t.Amount == 0 {
			return Errorf(CodeInvalidAmount, "amount", "an earn needs the purchase amount")
		}
		if t.Original != "" {
			return Errorf(CodeInvalidID, "original", "only a reverse, capture or void names an original")
		}
		if err := validLines(t.Lines, t.Amount); err != nil {
			return err
		}
	case KindBurn, KindHold:
		if t.Points == 0 {
			return Errorf(CodeInvalidPoints, "points", "a %s must redeem 1 or more", t.Kind)
		}
		if t.Original != "" {
			return Errorf(CodeInvalidID, "original", "only a reverse, capture or void names an original")
		}
	case KindCapture:
		if t.Points == 0 {
			return Errorf(CodeInvalidPoints, "points", "a capture must redeem 1 or more")
		}
		if err := checkID("original", t.Original); err != nil {
			return err
		}
	case KindReverse:
		if t.Points == 0 && t.Amount == 0 {
			return Errorf(CodeInvalidPoints, "points", "a reverse needs the returned amount or 1 or more points")
		}
		if err := checkID("original", t.Original); err != nil {
			return err
		}
	case KindVoid:
		if t.Points != 0 || t.Amount != 0 {
			return Errorf(CodeInvalidPoints, "points", "a void carries no points or amount; it cancels its original whole")
		}
		if err := checkID("original", t.Original); err != nil {
			return err
		}
	case "":
		return Errorf(CodeMissingField, "kind", "is required")
	default:
		return Errorf(CodeInvalidKind, "kind", "must be earn, burn, hold, capture, reverse or void")
	}
	if t.Original != "" && t.Original == t.ID {
		return Errorf(CodeInvalidID, "original", "cannot be the transaction itself")
	}
	return nil
}

// Validate checks the batch and every transaction in it: the version, the
// sender ids, the count, and that each transaction belongs to the sender.
// The error names the offending transaction's index.
func (b *Batch) Validate() error {
	if err := b.ValidateHeader(); err != nil {
		return err
	}
	for i := range b.Txs {
		if err := b.ValidateTx(i); err != nil {
			return err
		}
	}
	return nil
}

// Validate checks a balance query.
func (q *BalanceQuery) Validate() error {
	if err := checkVersion(q.Version); err != nil {
		return err
	}
	if err := checkID("request_id", q.RequestID); err != nil {
		return err
	}
	return checkID("member", q.Member)
}

// Validate checks an ack batch.
func (a *AckBatch) Validate() error {
	if err := checkVersion(a.Version); err != nil {
		return err
	}
	if len(a.Acks) > MaxBatchTxs {
		return Errorf(CodeTooMany, "acks", "%d acks, at most %d", len(a.Acks), MaxBatchTxs)
	}
	for i, k := range a.Acks {
		if !ValidID(k.ID) {
			return Errorf(CodeInvalidID, ackField(i, "id"), "not a valid id")
		}
		switch k.Status {
		case StatusApplied, StatusRejected, StatusHeld:
		case StatusDuplicate:
			if k.OriginalStatus != StatusApplied && k.OriginalStatus != StatusRejected {
				return Errorf(CodeMalformed, ackField(i, "original_status"), "a duplicate must say applied or rejected")
			}
		default:
			return Errorf(CodeMalformed, ackField(i, "status"), "must be applied, duplicate, rejected or held")
		}
	}
	return nil
}

// checkVersion accepts the versions from MinVersion to Version.
func checkVersion(v int) error {
	if v < MinVersion || v > Version {
		return Errorf(CodeUnsupported, "version", "got %d, this side speaks %d to %d", v, MinVersion, Version)
	}
	return nil
}

// validLines checks line items: at most MaxLines, valid ids, amounts in
// range, and a total equal to the transaction's amount.
func validLines(lines []Line, amount int64) error {
	if len(lines) == 0 {
		return nil
	}
	if len(lines) > MaxLines {
		return Errorf(CodeInvalidLines, "lines", "%d lines, at most %d", len(lines), MaxLines)
	}
	var sum int64
	for i, l := range lines {
		f := "lines[" + itoa(i) + "]"
		if l.SKU != "" && !ValidID(l.SKU) {
			return Errorf(CodeInvalidLines, f+".sku", "must be 1-%d characters of A-Z a-z 0-9 . _ -", MaxIDLen)
		}
		if l.Category != "" && !ValidID(l.Category) {
			return Errorf(CodeInvalidLines, f+".category", "must be 1-%d characters of A-Z a-z 0-9 . _ -", MaxIDLen)
		}
		if l.Amount < 0 || l.Amount > MaxAmount {
			return Errorf(CodeInvalidLines, f+".amount", "must be 0 to %d minor units", int64(MaxAmount))
		}
		sum += l.Amount // at most MaxLines × MaxAmount: no overflow
	}
	if sum != amount {
		return Errorf(CodeInvalidLines, "lines", "line amounts add up to %d, the amount is %d", sum, amount)
	}
	return nil
}

func validCurrency(c string) bool {
	if len(c) != 3 {
		return false
	}
	for i := 0; i < 3; i++ {
		if c[i] < 'A' || c[i] > 'Z' {
			return false
		}
	}
	return true
}

func txField(i int, f string) string  { return "txs[" + itoa(i) + "]." + f }
func ackField(i int, f string) string { return "acks[" + itoa(i) + "]." + f }

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b [20]byte
	n := len(b)
	for i > 0 {
		n--
		b[n] = byte('0' + i%10)
		i /= 10
	}
	return string(b[n:])
}

// Validate checks a Sighting's fields on their own.
func (s *Sighting) Validate() error {
	if err := checkVersion(s.Version); err != nil {
		return err
	}
	if err := checkID("store", s.Store); err != nil {
		return err
	}
	if err := checkID("terminal", s.Terminal); err != nil {
		return err
	}
	if s.Token == "" {
		return Errorf(CodeMissingField, "token", "is required")
	}
	if len(s.Token) > MaxTokenLen || !strings.HasPrefix(s.Token, TokenPrefix) {
		return Errorf(CodeTokenMalformed, "token", "must be a member token (%s…, at most %d characters)", TokenPrefix, MaxTokenLen)
	}
	if s.At.IsZero() {
		return Errorf(CodeMissingField, "at", "is required")
	}
	if s.At.Before(minCreatedAt) || !s.At.Before(maxCreatedAt) {
		return Errorf(CodeInvalidTime, "at", "must be between 2000 and 2100")
	}
	return nil
}
