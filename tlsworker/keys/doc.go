// Package keys loads the certificate chains and private keys that mail
// administrators already have from OpenSSL-based setups (qmail, ucspi-ssl,
// stunnel), so that sslserver and sslclient can use them unchanged.
//
// Certificates are public and private keys are not, so the two are parsed
// by separate entry points: the supervisor calls ParseChain or LoadChain,
// and only the confined key holder calls ParseKey or LoadKey. ParseKey
// accepts a file that also holds certificates (KEYFILE empty: the key is
// in CERTFILE) and ParseChain skips a key it finds there.
//
// Typical use in the key holder:
//
//	pass, err := keys.ReadPassphrase(fd3) // only under sslserver -3
//	...
//	signer, err := keys.LoadKey(keyFile, pass)
//	keys.Wipe(pass)
//	...
//	if err := keys.Match(chain, signer); err != nil { ... }
//
// Key formats: PKCS#1 "RSA PRIVATE KEY", SEC1 "EC PRIVATE KEY" (with or
// without an "EC PARAMETERS" block), PKCS#8 "PRIVATE KEY", the same
// encrypted with OpenSSL's legacy PEM encryption (Proc-Type/DEK-Info;
// DES-CBC, DES-EDE3-CBC, AES-128/192/256-CBC), and PKCS#8 "ENCRYPTED
// PRIVATE KEY" with PBES2: PBKDF2 with HMAC-SHA1/224/256/384/512 and
// AES-128/192/256-CBC or DES-EDE3-CBC. scrypt and the PKCS#5 v1 and
// PKCS#12 schemes are reported as unsupported. Keys are RSA, ECDSA
// (P-224, P-256, P-384, P-521) or Ed25519.
//
// Wiping is best effort: this package overwrites every buffer of its own
// that held secret bytes (decoded DER, decrypted DER, derived keys), and
// Wipe lets the caller do the same for the PEM and passphrase it handed
// in. It cannot wipe the big.Int inside a parsed key, the copy of the
// passphrase crypto/pbkdf2 takes as a string, or the pads inside
// crypto/hmac; keeping the key in one small confined process is the real
// protection.
package keys
