// Package integration is the end-to-end test suite: it builds the real
// binaries, runs sslserver as root on port 0 with certificates made in the
// test, and talks to it with real clients (crypto/tls, openssl s_client,
// swaks) and real UCSPI-TLS applications (mailfront, ucspitls-smtpd, and
// the test binary itself in helper roles).
//
// Run it as root:
//
//	go test ./integration/
//
// Without root, or without openssl, swaks or mailfront installed, the
// tests that need them are skipped; with CI=true they fail instead, so a
// CI machine cannot pass by missing a tool.
//
// The suite checks the wire contract of SPEC.md on its own: fd numbers,
// exit codes and the reply block format are written out here rather than
// taken from the protocol package, so a wrong shared constant cannot make
// both sides agree on a wrong value.
package integration
