package protocol

import (
	"bytes"
	"encoding/json"
)

// Encode marshals a message. It never fails for the message types of this
// package; the error is for values that cannot be JSON.
func Encode(v any) ([]byte, error) { return json.Marshal(v) }

// DecodeBatch parses and validates a Batch. Input over MaxBatchBytes is
// refused before it is parsed.
func DecodeBatch(data []byte) (*Batch, error) {
	var b Batch
	if err := decode(data, MaxBatchBytes, &b); err != nil {
		return nil, err
	}
	if err := b.Validate(); err != nil {
		return nil, err
	}
	return &b, nil
}

// DecodeAckBatch parses and validates an AckBatch.
func DecodeAckBatch(data []byte) (*AckBatch, error) {
	var a AckBatch
	if err := decode(data, MaxBatchBytes, &a); err != nil {
		return nil, err
	}
	if err := a.Validate(); err != nil {
		return nil, err
	}
	return &a, nil
}

// DecodeBalanceQuery parses and validates a BalanceQuery.
func DecodeBalanceQuery(data []byte) (*BalanceQuery, error) {
	var q BalanceQuery
	if err := decode(data, MaxSmallMessageBytes, &q); err != nil {
		return nil, err
	}
	if err := q.Validate(); err != nil {
		return nil, err
	}
	return &q, nil
}

// DecodeBalanceReply parses a BalanceReply.
func DecodeBalanceReply(data []byte) (*BalanceReply, error) {
	var r BalanceReply
	if err := decode(data, MaxSmallMessageBytes, &r); err != nil {
		return nil, err
	}
	if err := checkVersion(r.Version); err != nil {
		return nil, err
	}
	if !ValidID(r.RequestID) {
		return nil, Errorf(CodeInvalidID, "request_id", "not a valid id")
	}
	return &r, nil
}

// DecodeConfig parses and validates a Config.
func DecodeConfig(data []byte) (*Config, error) {
	var c Config
	if err := decode(data, MaxConfigBytes, &c); err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// DecodeSighting parses and validates a Sighting. It checks the token's
// form (length, prefix), not its signature: that takes the hub's keys
// (ParseMemberToken).
func DecodeSighting(data []byte) (*Sighting, error) {
	var s Sighting
	if err := decode(data, MaxSmallMessageBytes, &s); err != nil {
		return nil, err
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return &s, nil
}

// decode parses exactly one JSON value of at most limit bytes into v.
func decode(data []byte, limit int, v any) error {
	if len(data) > limit {
		return Errorf(CodeTooLarge, "", "%d bytes, at most %d", len(data), limit)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(v); err != nil {
		return Errorf(CodeMalformed, "", "%s", jsonProblem(err))
	}
	// Not dec.More(): it reports false when the next byte is '}' or ']', so
	// `{…}}` would pass. Only JSON whitespace may follow the value.
	if len(bytes.TrimLeft(data[dec.InputOffset():], " \t\r\n")) != 0 {
		return Errorf(CodeMalformed, "", "trailing data after the message")
	}
	return nil
}

// jsonProblem turns a json error into one short line without Go type names.
func jsonProblem(err error) string {
	switch e := err.(type) {
	case *json.SyntaxError:
		return "invalid JSON at byte " + itoa(int(e.Offset))
	case *json.UnmarshalTypeError:
		if e.Field != "" {
			return "wrong type for " + e.Field
		}
		return "wrong type of message"
	}
	if err.Error() == "EOF" {
		return "empty message"
	}
	return "invalid JSON"
}
