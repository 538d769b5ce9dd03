package acl

import (
	"bytes"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/ucspi-tls/sslserver/internal/testutil"
)

// vectorFile is a file of testdata/tcprules (see its README).
func vectorFile(t testing.TB, name string) string {
	t.Helper()
	return testutil.Tcprules(t, name)
}

// unescapeTSV undoes the \xNN escapes of the vector files.
func unescapeTSV(t testing.TB, s string) []byte {
	t.Helper()
	var out []byte
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			out = append(out, s[i])
			continue
		}
		if i+3 >= len(s) || s[i+1] != 'x' {
			t.Fatalf("bad escape in %q", s)
		}
		v, err := strconv.ParseUint(s[i+2:i+4], 16, 8)
		if err != nil {
			t.Fatalf("bad escape in %q: %v", s, err)
		}
		out = append(out, byte(v))
		i += 3
	}
	return out
}

// readRecordsTSV reads a "key TAB data" vector file.
func readRecordsTSV(t testing.TB, name string) []Record {
	t.Helper()
	raw, err := os.ReadFile(vectorFile(t, name))
	if err != nil {
		t.Fatal(err)
	}
	var records []Record
	for _, line := range strings.Split(strings.TrimSuffix(string(raw), "\n"), "\n") {
		key, data, ok := strings.Cut(line, "\t")
		if !ok {
			t.Fatalf("%s: no tab in %q", name, line)
		}
		records = append(records, Record{Key: unescapeTSV(t, key), Data: unescapeTSV(t, data)})
	}
	return records
}

func recordStrings(records []Record) []string {
	var out []string
	for _, r := range records {
		out = append(out, strconv.Quote(string(r.Key))+" "+strconv.Quote(string(r.Data)))
	}
	return out
}

func compileVectorRules(t testing.TB) []Record {
	t.Helper()
	f, err := os.Open(vectorFile(t, "rules.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rules, err := ParseRules(f)
	if err != nil {
		t.Fatal(err)
	}
	records, err := Compile(rules)
	if err != nil {
		t.Fatal(err)
	}
	return records
}

func TestCompileGivesFehcomRecords(t *testing.T) {
	got := recordStrings(compileVectorRules(t))
	want := recordStrings(readRecordsTSV(t, "fehcom-cdb.tsv"))
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("compiled records differ from fehcom's:\n got %q\nwant %q", got, want)
	}
}

// Records in source order and djb's table layout make the whole file equal.
func TestMakeCDBIsByteIdenticalToFehcom(t *testing.T) {
	got, err := MakeCDB(compileVectorRules(t))
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(vectorFile(t, "rules.fehcom.cdb"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("cdb differs from rules.fehcom.cdb (%d vs %d bytes)", len(got), len(want))
	}
}

func TestReadReferenceCDBs(t *testing.T) {
	for _, c := range []struct{ cdb, tsv string }{
		{"rules.fehcom.cdb", "fehcom-cdb.tsv"},
		{"rules.debian.cdb", "debian-cdb.tsv"},
	} {
		f, err := Open(vectorFile(t, c.cdb))
		if err != nil {
			t.Fatal(err)
		}
		var got []Record
		err = f.ForEach(func(k, d []byte) error {
			got = append(got, Record{Key: k, Data: d})
			return nil
		})
		if err != nil {
			t.Fatalf("%s: %v", c.cdb, err)
		}
		if g, w := recordStrings(got), recordStrings(readRecordsTSV(t, c.tsv)); !slices.Equal(g, w) {
			t.Errorf("%s records:\n got %q\nwant %q", c.cdb, g, w)
		}
		f.Close()
	}
}

// lookupRow is one line of lookups.tsv.
type lookupRow struct {
	query Query
	deny  bool
	env   []Var
	key   string // as the reference checker printed it
	text  string
}

func readLookups(t testing.TB) []lookupRow {
	t.Helper()
	raw, err := os.ReadFile(vectorFile(t, "lookups.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	var rows []lookupRow
	for _, line := range strings.Split(strings.TrimSuffix(string(raw), "\n"), "\n") {
		if strings.HasPrefix(line, "#") {
			continue
		}
		rows = append(rows, parseLookupRow(t, line))
	}
	return rows
}

func parseLookupRow(t testing.TB, line string) lookupRow {
	t.Helper()
	f := strings.Split(line, "\t")
	if len(f) != 6 || (f[3] != "allow" && f[3] != "deny") {
		t.Fatalf("bad lookups.tsv line %q", line)
	}
	none := func(s string) string {
		if s == "-" {
			return ""
		}
		return s
	}
	row := lookupRow{
		query: Query{IP: netip.MustParseAddr(f[0]), Host: none(f[1]), Info: none(f[2])},
		deny:  f[3] == "deny",
		key:   f[5],
		text:  line,
	}
	for _, nv := range strings.Split(f[4], ";") {
		if name, value, ok := strings.Cut(nv, "="); ok {
			row.env = append(row.env, Var{Name: name, Value: value})
		}
	}
	return row
}

func checkRow(t *testing.T, cdbPath string, row lookupRow) Verdict {
	t.Helper()
	v, err := Check(cdbPath, row.query)
	if err != nil {
		t.Fatalf("%q: %v", row.text, err)
	}
	if v.Deny != row.deny || !slices.Equal(v.Env, row.env) || DisplayKey(v.Key) != row.key {
		t.Errorf("%s, row %q: got deny=%v env=%q key %q (%q)", filepath.Base(cdbPath), row.text, v.Deny, v.Env, DisplayKey(v.Key), v.Key)
	}
	return v
}

func TestLookupsFehcomCDB(t *testing.T) {
	for _, row := range readLookups(t) {
		checkRow(t, vectorFile(t, "rules.fehcom.cdb"), row)
	}
}

// Our own compiled cdb must answer the same.
func TestLookupsCompiledCDB(t *testing.T) {
	b, err := MakeCDB(compileVectorRules(t))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "rules.cdb")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, row := range readLookups(t) {
		checkRow(t, path, row)
	}
}

// Debian's ucspi-tcp 0.88 has no CIDR and stores IPv6 as written, so its
// cdb holds the same IPv4, dot-prefix, range, host and default keys as
// fehcom's but no usable CIDR or IPv6 key. Hence a row applies to it as is
// exactly when the remote IP is IPv4 and the fehcom match was not a CIDR
// key ('_' or '^'): every key tried before or after the CIDR step exists
// identically in both files. For the other rows, the Debian cdb must
// answer as fehcom's records would with the CIDR and IPv6 keys taken out.
func TestLookupsDebianCDB(t *testing.T) {
	debian := vectorFile(t, "rules.debian.cdb")
	fehcom := vectorFile(t, "rules.fehcom.cdb")
	reduced := filepath.Join(t.TempDir(), "fehcom-ipv4-only.cdb")
	writeCDB(t, reduced, withoutCIDRAndIPv6(readRecordsTSV(t, "fehcom-cdb.tsv")))
	applied := 0
	for _, row := range readLookups(t) {
		fv, err := Check(fehcom, row.query)
		if err != nil {
			t.Fatal(err)
		}
		if row.query.IP.Unmap().Is4() && !isCIDRKey(fv.Key) {
			checkRow(t, debian, row)
			applied++
			continue
		}
		dv, err1 := Check(debian, row.query)
		rv, err2 := Check(reduced, row.query)
		if err1 != nil || err2 != nil || !slices.Equal(dv.Env, rv.Env) || dv.Deny != rv.Deny || dv.Key != rv.Key {
			t.Errorf("row %q: debian %+v %v, fehcom without CIDR/IPv6 %+v %v", row.text, dv, err1, rv, err2)
		}
	}
	if applied < 10 {
		t.Errorf("only %d lookup rows applied to the Debian cdb", applied)
	}
}

func isCIDRKey(k string) bool {
	return strings.HasPrefix(k, "_") || strings.HasPrefix(k, "^")
}

func withoutCIDRAndIPv6(records []Record) []Record {
	var out []Record
	for _, r := range records {
		k := string(r.Key)
		if !isCIDRKey(k) && !strings.Contains(k, ":") {
			out = append(out, r)
		}
	}
	return out
}

func writeCDB(t testing.TB, path string, records []Record) {
	t.Helper()
	b, err := MakeCDB(records)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
