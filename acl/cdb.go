package acl

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
)

// The cdb layout (D. J. Bernstein's constant database), all numbers
// little-endian uint32:
//
//	header   256 × (table position, table slot count)       2048 bytes
//	records  klen, dlen, key, data                           repeated
//	tables   256 hash tables of (hash, record position)      slots each
//
// A key's hash h picks table h&255; its probe starts at slot (h>>8)%slots
// and goes on linearly; a slot with position 0 ends the probe.
const (
	cdbTables     = 256
	cdbHeaderSize = cdbTables * 8
	cdbSlotSize   = 8
	cdbRecordHead = 8
)

// ErrMalformed is wrapped by every error about a cdb file that is not a
// valid constant database (truncated, offsets out of range, bad tables).
var ErrMalformed = errors.New("malformed cdb")

// Record is one key/data pair of a cdb.
type Record struct {
	Key  []byte
	Data []byte
}

// cdbHash is the cdb hash function: h = 5381; h = ((h<<5)+h) ^ c.
func cdbHash(key []byte) uint32 {
	h := uint32(5381)
	for _, c := range key {
		h = ((h << 5) + h) ^ uint32(c)
	}
	return h
}

// slot is one hash-table entry.
type slot struct {
	hash uint32
	pos  uint32
}

// MakeCDB encodes records as a cdb, in the same layout as djb's cdbmake
// (records in the given order, tables 0..255 after them, probe collisions
// resolved in insertion order), so equal input gives byte-identical files.
func MakeCDB(records []Record) ([]byte, error) {
	var buf bytes.Buffer
	buf.Write(make([]byte, cdbHeaderSize))
	var byTable [cdbTables][]slot
	for _, r := range records {
		pos, err := cdbOffset(buf.Len(), cdbRecordHead+len(r.Key)+len(r.Data))
		if err != nil {
			return nil, err
		}
		h := cdbHash(r.Key)
		byTable[h&255] = append(byTable[h&255], slot{hash: h, pos: pos})
		writeRecord(&buf, r)
	}
	var header [cdbHeaderSize]byte
	for t, entries := range byTable {
		pos, err := cdbOffset(buf.Len(), len(entries)*2*cdbSlotSize)
		if err != nil {
			return nil, err
		}
		binary.LittleEndian.PutUint32(header[t*8:], pos)
		binary.LittleEndian.PutUint32(header[t*8+4:], uint32(len(entries)*2))
		buf.Write(buildTable(entries))
	}
	out := buf.Bytes()
	copy(out, header[:])
	return out, nil
}

// cdbOffset checks that an item of size n written at pos still ends inside
// the 4 GiB a cdb can address, and returns pos.
func cdbOffset(pos, n int) (uint32, error) {
	if uint64(pos)+uint64(n) > math.MaxUint32 {
		return 0, fmt.Errorf("cdb would exceed 4 GiB at offset %d", pos)
	}
	return uint32(pos), nil
}

func writeRecord(buf *bytes.Buffer, r Record) {
	var head [cdbRecordHead]byte
	binary.LittleEndian.PutUint32(head[0:], uint32(len(r.Key)))
	binary.LittleEndian.PutUint32(head[4:], uint32(len(r.Data)))
	buf.Write(head[:])
	buf.Write(r.Key)
	buf.Write(r.Data)
}

// buildTable lays out one hash table with twice as many slots as entries.
func buildTable(entries []slot) []byte {
	n := uint32(len(entries) * 2)
	table := make([]slot, n)
	for _, e := range entries {
		i := (e.hash >> 8) % n
		for table[i].pos != 0 {
			i = (i + 1) % n
		}
		table[i] = e
	}
	out := make([]byte, 0, len(table)*cdbSlotSize)
	for _, s := range table {
		out = binary.LittleEndian.AppendUint32(out, s.hash)
		out = binary.LittleEndian.AppendUint32(out, s.pos)
	}
	return out
}

// tableRef is one header entry.
type tableRef struct {
	pos   uint32
	slots uint32
}

// CDB reads a constant database through an io.ReaderAt. Every offset and
// length found in the file is checked against its size first, so a
// truncated or hostile file gives an error wrapping ErrMalformed.
type CDB struct {
	r      io.ReaderAt
	size   int64
	tables [cdbTables]tableRef
}

// NewCDB reads and checks the header of the cdb of the given size in r.
func NewCDB(r io.ReaderAt, size int64) (*CDB, error) {
	if size < cdbHeaderSize {
		return nil, fmt.Errorf("%w: %d bytes is shorter than the %d-byte header", ErrMalformed, size, cdbHeaderSize)
	}
	c := &CDB{r: r, size: size}
	var header [cdbHeaderSize]byte
	if err := c.readAt(header[:], 0); err != nil {
		return nil, err
	}
	for t := range c.tables {
		ref := tableRef{
			pos:   binary.LittleEndian.Uint32(header[t*8:]),
			slots: binary.LittleEndian.Uint32(header[t*8+4:]),
		}
		if err := c.checkTable(t, ref); err != nil {
			return nil, err
		}
		c.tables[t] = ref
	}
	return c, nil
}

func (c *CDB) checkTable(t int, ref tableRef) error {
	end := int64(ref.pos) + int64(ref.slots)*cdbSlotSize
	if ref.pos < cdbHeaderSize || end > c.size {
		return fmt.Errorf("%w: hash table %d (%d slots at %d) lies outside the %d-byte file", ErrMalformed, t, ref.slots, ref.pos, c.size)
	}
	return nil
}

// readAt fills p from offset off, which the caller has not yet checked.
func (c *CDB) readAt(p []byte, off int64) error {
	if off < 0 || off+int64(len(p)) > c.size {
		return fmt.Errorf("%w: %d bytes at offset %d lie outside the %d-byte file", ErrMalformed, len(p), off, c.size)
	}
	if _, err := c.r.ReadAt(p, off); err != nil {
		return fmt.Errorf("reading cdb at offset %d: %w", off, err)
	}
	return nil
}

func (c *CDB) readUint32Pair(off int64) (uint32, uint32, error) {
	var b [8]byte
	if err := c.readAt(b[:], off); err != nil {
		return 0, 0, err
	}
	return binary.LittleEndian.Uint32(b[0:]), binary.LittleEndian.Uint32(b[4:]), nil
}

// Get returns the data of the first record with the given key, and
// whether there is one.
func (c *CDB) Get(key []byte) ([]byte, bool, error) {
	h := cdbHash(key)
	ref := c.tables[h&255]
	if ref.slots == 0 {
		return nil, false, nil
	}
	var data []byte
	var found bool
	err := c.probe(ref, (h>>8)%ref.slots, func(s slot) (bool, error) {
		if s.hash != h {
			return false, nil
		}
		var err error
		data, found, err = c.matchRecord(s.pos, key)
		return found, err
	})
	return data, found, err
}

// probeBatch is how many slots one read fetches.
const probeBatch = 64

// probe calls visit for the slots of table ref from start on, wrapping
// around once at most, until a slot is empty or visit says stop.
func (c *CDB) probe(ref tableRef, start uint32, visit func(slot) (bool, error)) error {
	var buf [probeBatch * cdbSlotSize]byte
	i := start
	for left := ref.slots; left > 0; {
		n := min(left, ref.slots-i, probeBatch)
		chunk := buf[:n*cdbSlotSize]
		if err := c.readAt(chunk, int64(ref.pos)+int64(i)*cdbSlotSize); err != nil {
			return err
		}
		for j := 0; j < len(chunk); j += cdbSlotSize {
			s := slot{hash: binary.LittleEndian.Uint32(chunk[j:]), pos: binary.LittleEndian.Uint32(chunk[j+4:])}
			if s.pos == 0 {
				return nil
			}
			if stop, err := visit(s); stop || err != nil {
				return err
			}
		}
		left -= n
		i = (i + n) % ref.slots
	}
	return nil
}

// matchRecord reads the record at pos and returns its data if its key is key.
func (c *CDB) matchRecord(pos uint32, key []byte) ([]byte, bool, error) {
	klen, dlen, err := c.recordHead(int64(pos))
	if err != nil || int(klen) != len(key) {
		return nil, false, err
	}
	k := make([]byte, klen)
	if err := c.readAt(k, int64(pos)+cdbRecordHead); err != nil {
		return nil, false, err
	}
	if !bytes.Equal(k, key) {
		return nil, false, nil
	}
	data := make([]byte, dlen)
	if err := c.readAt(data, int64(pos)+cdbRecordHead+int64(klen)); err != nil {
		return nil, false, err
	}
	return data, true, nil
}

// recordHead reads a record's key and data lengths and checks that the
// whole record lies inside the file.
func (c *CDB) recordHead(pos int64) (klen, dlen uint32, err error) {
	klen, dlen, err = c.readUint32Pair(pos)
	if err != nil {
		return 0, 0, err
	}
	if end := pos + cdbRecordHead + int64(klen) + int64(dlen); end > c.size {
		return 0, 0, fmt.Errorf("%w: record at %d (key %d, data %d bytes) runs past the %d-byte file", ErrMalformed, pos, klen, dlen, c.size)
	}
	return klen, dlen, nil
}

// ForEach calls fn for every record in file order, stopping at the first
// error fn returns. The records end where the first hash table begins.
func (c *CDB) ForEach(fn func(key, data []byte) error) error {
	end := int64(c.recordsEnd())
	for pos := int64(cdbHeaderSize); pos < end; {
		klen, dlen, err := c.recordHead(pos)
		if err != nil {
			return err
		}
		next := pos + cdbRecordHead + int64(klen) + int64(dlen)
		if next > end {
			return fmt.Errorf("%w: record at %d runs into the hash tables at %d", ErrMalformed, pos, end)
		}
		rec := make([]byte, int(klen)+int(dlen))
		if err := c.readAt(rec, pos+cdbRecordHead); err != nil {
			return err
		}
		if err := fn(rec[:klen], rec[klen:]); err != nil {
			return err
		}
		pos = next
	}
	return nil
}

func (c *CDB) recordsEnd() uint32 {
	end := c.tables[0].pos
	for _, t := range c.tables[1:] {
		end = min(end, t.pos)
	}
	return end
}
