package protocol

// Size and range limits. Decoders check sizes before parsing anything.
const (
	// MaxBatchTxs is the most transactions one batch may carry.
	MaxBatchTxs = 500
	// MaxBatchBytes is the largest encoded Batch or AckBatch accepted.
	MaxBatchBytes = 512 << 10
	// MaxSmallMessageBytes is the largest BalanceQuery or BalanceReply accepted.
	MaxSmallMessageBytes = 4 << 10
	// MaxPoints is the most points one transaction may move.
	MaxPoints = 1_000_000_000
	// MaxAmount is the largest amount, in minor units, one transaction may carry.
	MaxAmount = 1_000_000_000_000
	// MaxLines is the most line items one transaction may carry.
	MaxLines = 100
	// MaxConfigBytes is the largest encoded Config accepted.
	MaxConfigBytes = 256 << 10
	// MaxWindow is the largest window a hub grants in an AckBatch.
	MaxWindow = 1 << 20
)
