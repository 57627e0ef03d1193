package protocol

// ParseBatch parses a Batch and checks its header — version, sender ids,
// transaction count — but not the transactions themselves. The hub uses it
// so that one bad transaction is answered on its own (rejected, with its
// code) instead of poisoning the batch and every retry of it.
func ParseBatch(data []byte) (*Batch, error) {
	var b Batch
	if err := decode(data, MaxBatchBytes, &b); err != nil {
		return nil, err
	}
	if err := b.ValidateHeader(); err != nil {
		return nil, err
	}
	return &b, nil
}

// ValidateHeader checks everything about a batch except its transactions' fields.
func (b *Batch) ValidateHeader() error {
	if err := checkVersion(b.Version); err != nil {
		return err
	}
	if err := checkID("store", b.Store); err != nil {
		return err
	}
	if err := checkID("terminal", b.Terminal); err != nil {
		return err
	}
	if len(b.Txs) == 0 {
		return Errorf(CodeMissingField, "txs", "a batch needs at least one transaction")
	}
	if len(b.Txs) > MaxBatchTxs {
		return Errorf(CodeTooMany, "txs", "%d transactions, at most %d", len(b.Txs), MaxBatchTxs)
	}
	if b.Backlog < 0 {
		return Errorf(CodeInvalidAmount, "backlog", "must not be negative")
	}
	return nil
}

// ValidateTx checks transaction i of the batch: its own fields, and that it
// belongs to the batch's sender.
func (b *Batch) ValidateTx(i int) error {
	t := &b.Txs[i]
	if err := t.Validate(); err != nil {
		pe := err.(*Error)
		return &Error{Code: pe.Code, Field: txField(i, pe.Field), Msg: pe.Msg}
	}
	if t.Store != b.Store || t.Terminal != b.Terminal {
		return Errorf(CodeStoreMismatch, txField(i, "store"), "transaction of %s/%s in a batch from %s/%s", t.Store, t.Terminal, b.Store, b.Terminal)
	}
	return nil
}
