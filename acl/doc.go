// Package acl reads and writes tcprules access rules: the source format of
// ucspi-tcp's tcprules in fehcom's ucspi-tcp6 dialect (CIDR, IPv6), the
// constant database (cdb) it compiles to, and the lookup tcpserver and
// sslserver do against it for each connection.
//
// Compiling, as cmd/sslrules does:
//
//	rules, err := acl.ParseRules(os.Stdin) // *acl.ParseError names the line
//	records, err := acl.Compile(rules)
//	cdb, err := acl.MakeCDB(records) // then write, fsync, rename
//
// Checking a connection, as the server does:
//
//	v, err := acl.Check("/etc/rules.cdb", acl.Query{IP: remote, Host: host})
//	if err != nil { ... } // errors.Is(err, fs.ErrNotExist): no cdb
//	if v.Deny { ... }     // drop the connection
//	for _, e := range v.Env { ... } // set e.Name=e.Value, in order
//
// The cdbs that ucspi-tcp6's and ucspi-tcp's tcprules write can be read,
// and compiling gives the same records as ucspi-tcp6 does; docs/rules.md
// has the format, the key encoding and the lookup order.
package acl
