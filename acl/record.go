package acl

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
)

// A record's data is a run of NUL-terminated entries, as tcprules writes
// them: "D" if the rule denies (always first, because the instruction
// comes first), then "+NAME=value" per assignment. An allow rule without
// assignments has empty data.
const (
	entryDeny = 'D'
	entryEnv  = '+'
)

// Keys returns the cdb keys of the rule's address: one, or one per value
// of an IPv4 octet range.
func (r Rule) Keys() ([]string, error) {
	return addressKeys(r.Address)
}

// Data returns the rule's cdb data.
func (r Rule) Data() ([]byte, error) {
	var b bytes.Buffer
	if r.Deny {
		b.WriteString(string(entryDeny) + "\x00")
	}
	for _, v := range r.Env {
		if err := checkVar(v); err != nil {
			return nil, err
		}
		b.WriteString(string(entryEnv) + v.Name + "=" + v.Value + "\x00")
	}
	return b.Bytes(), nil
}

func checkVar(v Var) error {
	if v.Name == "" || strings.ContainsAny(v.Name, "=,\x00") || strings.Contains(v.Value, "\x00") {
		return fmt.Errorf("bad assignment %q=%q", v.Name, v.Value)
	}
	return nil
}

// Compile turns rules into the cdb records the reference tcprules writes
// for them, in the same order; pass the result to MakeCDB.
func Compile(rules []Rule) ([]Record, error) {
	var records []Record
	for _, r := range rules {
		keys, err := r.Keys()
		if err != nil {
			return nil, fmt.Errorf("rule on line %d, address %q: %w", r.Line, r.Address, err)
		}
		data, err := r.Data()
		if err != nil {
			return nil, fmt.Errorf("rule on line %d: %w", r.Line, err)
		}
		for _, k := range keys {
			records = append(records, Record{Key: []byte(k), Data: data})
		}
	}
	return records, nil
}

// decodeData parses a record's data. Entries after a "D" are checked but
// not returned: the connection is dropped there, as tcpserver does.
func decodeData(data []byte) (deny bool, env []Var, err error) {
	for len(data) > 0 {
		entry, rest, found := bytes.Cut(data, []byte{0})
		if !found {
			return false, nil, fmt.Errorf("%w: rule data %q lacks its final NUL", ErrMalformed, data)
		}
		v, isDeny, err := decodeEntry(entry)
		switch {
		case err != nil:
			return false, nil, err
		case isDeny:
			deny = true
		case !deny:
			env = append(env, v)
		}
		data = rest
	}
	return deny, env, nil
}

var errEntry = errors.New("unknown rule data entry")

func decodeEntry(entry []byte) (Var, bool, error) {
	if len(entry) == 1 && entry[0] == entryDeny {
		return Var{}, true, nil
	}
	if len(entry) == 0 || entry[0] != entryEnv {
		return Var{}, false, fmt.Errorf("%w: %w %q", ErrMalformed, errEntry, entry)
	}
	name, value, found := strings.Cut(string(entry[1:]), "=")
	if !found || name == "" {
		return Var{}, false, fmt.Errorf("%w: assignment %q has no NAME=", ErrMalformed, entry)
	}
	return Var{Name: name, Value: value}, false, nil
}
