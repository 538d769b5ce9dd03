package acl

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"testing"
)

func readerFor(t testing.TB, b []byte) *CDB {
	t.Helper()
	c, err := NewCDB(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func mustMake(t testing.TB, records []Record) []byte {
	t.Helper()
	b, err := MakeCDB(records)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestCDBRoundTrip(t *testing.T) {
	var records []Record
	for i := range 1000 {
		records = append(records, Record{Key: fmt.Appendf(nil, "key%d", i), Data: fmt.Appendf(nil, "data%d", i)})
	}
	records = append(records,
		Record{Key: []byte("key7"), Data: []byte("second key7")},
		Record{Key: nil, Data: []byte("empty key")},
		Record{Key: []byte("no data"), Data: nil},
	)
	c := readerFor(t, mustMake(t, records))
	for _, r := range records[:1000] {
		got, found, err := c.Get(r.Key)
		if err != nil || !found || !bytes.Equal(got, r.Data) {
			t.Fatalf("Get(%q) = %q %v %v, want %q", r.Key, got, found, err, r.Data)
		}
	}
	for key, want := range map[string]string{"key7": "data7", "": "empty key", "no data": ""} {
		if got, found, err := c.Get([]byte(key)); err != nil || !found || string(got) != want {
			t.Errorf("Get(%q) = %q %v %v, want the first record %q", key, got, found, err, want)
		}
	}
	if _, found, err := c.Get([]byte("key1000")); found || err != nil {
		t.Errorf("Get of a missing key: found=%v err=%v", found, err)
	}
	var walked []Record
	if err := c.ForEach(func(k, d []byte) error {
		walked = append(walked, Record{Key: k, Data: d})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if g, w := recordStrings(walked), recordStrings(records); !slices.Equal(g, w) {
		t.Errorf("ForEach gave %d records, want %d in file order", len(g), len(w))
	}
}

// Two keys with the same full hash share a probe chain; both must be found.
func TestCDBHashCollision(t *testing.T) {
	a, b := []byte("j15li4cx"), []byte("a2u5eu4s")
	if cdbHash(a) != cdbHash(b) {
		t.Fatalf("test keys do not collide: %#x %#x", cdbHash(a), cdbHash(b))
	}
	c := readerFor(t, mustMake(t, []Record{{Key: a, Data: []byte("A")}, {Key: b, Data: []byte("B")}}))
	for k, want := range map[string]string{string(a): "A", string(b): "B"} {
		if got, found, err := c.Get([]byte(k)); err != nil || !found || string(got) != want {
			t.Errorf("Get(%q) = %q %v %v, want %q", k, got, found, err, want)
		}
	}
}

// A table of more slots than one probe read fetches, so that probes cross
// batch boundaries and wrap around the table's end.
func TestCDBLargeTable(t *testing.T) {
	var records []Record
	for i := 0; len(records) < 3*probeBatch; i++ {
		k := fmt.Appendf(nil, "k%d", i)
		if cdbHash(k)&255 == 7 {
			records = append(records, Record{Key: k, Data: fmt.Appendf(nil, "d%d", i)})
		}
	}
	c := readerFor(t, mustMake(t, records))
	if c.tables[7].slots != 6*probeBatch {
		t.Fatalf("table 7 has %d slots", c.tables[7].slots)
	}
	for _, r := range records {
		if got, found, err := c.Get(r.Key); err != nil || !found || !bytes.Equal(got, r.Data) {
			t.Fatalf("Get(%q) = %q %v %v", r.Key, got, found, err)
		}
	}
	if _, found, err := c.Get(sameTableKey(records[0].Key)); found || err != nil {
		t.Errorf("missing key: %v %v", found, err)
	}
}

func TestCDBEmpty(t *testing.T) {
	b := mustMake(t, nil)
	if len(b) != cdbHeaderSize {
		t.Fatalf("empty cdb is %d bytes, want %d", len(b), cdbHeaderSize)
	}
	if _, found, err := readerFor(t, b).Get([]byte("x")); found || err != nil {
		t.Errorf("Get on empty cdb: found=%v err=%v", found, err)
	}
}

// corrupt returns a copy of a one-record cdb (key "k", data "d") changed by fn.
func corrupt(t *testing.T, fn func(b []byte) []byte) []byte {
	b := mustMake(t, []Record{{Key: []byte("k"), Data: []byte("d")}})
	return fn(slices.Clone(b))
}

// slotOf returns the offset of the one used slot for key "k".
func slotOf(b []byte) int {
	h := cdbHash([]byte("k"))
	pos := binary.LittleEndian.Uint32(b[(h&255)*8:])
	slots := binary.LittleEndian.Uint32(b[(h&255)*8+4:])
	return int(pos) + int((h>>8)%slots)*cdbSlotSize
}

func TestCDBMalformed(t *testing.T) {
	tableOfK := int(cdbHash([]byte("k")) & 255)
	cases := map[string][]byte{
		"empty":          {},
		"short header":   make([]byte, cdbHeaderSize-1),
		"table past end": corrupt(t, func(b []byte) []byte { return b[:len(b)-1] }),
		"table in header": corrupt(t, func(b []byte) []byte {
			binary.LittleEndian.PutUint32(b[tableOfK*8:], 100)
			return b
		}),
		"huge slot count": corrupt(t, func(b []byte) []byte {
			binary.LittleEndian.PutUint32(b[tableOfK*8+4:], 0xffffffff)
			return b
		}),
		"record past end": corrupt(t, func(b []byte) []byte {
			binary.LittleEndian.PutUint32(b[slotOf(b)+4:], uint32(len(b)-4))
			return b
		}),
		"huge key length": corrupt(t, func(b []byte) []byte {
			binary.LittleEndian.PutUint32(b[cdbHeaderSize:], 0xfffffff0)
			return b
		}),
		"huge data length": corrupt(t, func(b []byte) []byte {
			binary.LittleEndian.PutUint32(b[cdbHeaderSize+4:], 0xfffffff0)
			return b
		}),
	}
	for name, b := range cases {
		if err := tryCDB(b, []byte("k")); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: got %v, want an error wrapping ErrMalformed", name, err)
		}
	}
}

// tryCDB opens b, looks key up and walks all records; the first error.
func tryCDB(b, key []byte) error {
	c, err := NewCDB(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		return err
	}
	if _, _, err := c.Get(key); err != nil {
		return err
	}
	return c.ForEach(func(k, d []byte) error { return nil })
}

// A table with no empty slot must not make Get loop forever.
func TestCDBFullTableTerminates(t *testing.T) {
	b := corrupt(t, func(b []byte) []byte {
		h := cdbHash([]byte("k"))
		pos := binary.LittleEndian.Uint32(b[(h&255)*8:])
		for i := range 2 {
			off := int(pos) + i*cdbSlotSize
			binary.LittleEndian.PutUint32(b[off:], h)
			binary.LittleEndian.PutUint32(b[off+4:], cdbHeaderSize)
		}
		return b
	})
	c := readerFor(t, b)
	if _, found, err := c.Get([]byte("k")); err != nil || !found {
		t.Errorf("Get(k) = %v %v", found, err)
	}
	// Another key of the same table probes every slot once, then gives up.
	other := sameTableKey([]byte("k"))
	if _, found, err := c.Get(other); err != nil || found {
		t.Errorf("Get(%q) = %v %v, want not found", other, found, err)
	}
}

// sameTableKey returns a key other than k whose hash picks k's table.
func sameTableKey(k []byte) []byte {
	for i := 0; ; i++ {
		other := fmt.Appendf(nil, "x%d", i)
		if cdbHash(other)&255 == cdbHash(k)&255 && !bytes.Equal(other, k) {
			return other
		}
	}
}

func TestDecodeDataMalformed(t *testing.T) {
	for _, data := range []string{"D", "+A=b", "X\x00", "\x00", "+A\x00", "+=b\x00", "DD\x00"} {
		if _, _, err := decodeData([]byte(data)); !errors.Is(err, ErrMalformed) {
			t.Errorf("decodeData(%q) = %v, want ErrMalformed", data, err)
		}
	}
}

func TestDecodeData(t *testing.T) {
	cases := []struct {
		data string
		deny bool
		env  []Var
	}{
		{"", false, nil},
		{"D\x00", true, nil},
		{"+A=\x00+B=x=y\x00", false, []Var{{"A", ""}, {"B", "x=y"}}},
		{"+A=1\x00D\x00+B=2\x00", true, []Var{{"A", "1"}}},
	}
	for _, c := range cases {
		deny, env, err := decodeData([]byte(c.data))
		if err != nil || deny != c.deny || !slices.Equal(env, c.env) {
			t.Errorf("decodeData(%q) = %v %q %v, want %v %q", c.data, deny, env, err, c.deny, c.env)
		}
	}
}
