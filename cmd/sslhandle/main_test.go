package main

import (
	"bufio"
	"bytes"
	"net"
	"strings"
	"testing"

	"github.com/pires/go-proxyproto"
	"github.com/pires/go-proxyproto/tlvparse"
)

func TestParseBackend(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want backend
		err  string
	}{
		{[]string{"127.0.0.1:8080"}, backend{network: "tcp", addr: "127.0.0.1:8080"}, ""},
		{[]string{"[::1]:25", "proxy"}, backend{network: "tcp", addr: "[::1]:25", proxy: true}, ""},
		{[]string{"/run/app.sock"}, backend{network: "unix", addr: "/run/app.sock"}, ""},
		{nil, backend{}, "need backend"},
		{[]string{"app"}, backend{}, `backend "app"`},
		{[]string{"/s", "proxy-v1"}, backend{}, `unknown word "proxy-v1"`},
		{[]string{"/s", "proxy", "more"}, backend{}, "need backend"},
	} {
		got, err := parseBackend(tc.args)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: %v, want an error with %q", tc.args, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q: %+v, %v; want %+v", tc.args, got, err, tc.want)
		}
	}
}

// TestProxyTLVs: what a PROXY v2 reader finds in the header, with and
// without the optional facts.
func TestProxyTLVs(t *testing.T) {
	full := map[string]string{"SSL_PROTOCOL": "TLSv1.3", "SSL_CIPHER": "TLS_AES_128_GCM_SHA256",
		"SSL_TLS_SNI": "www.example.org", "SSL_CLIENT_S_DN_CN": "alice", "SSL_CLIENT_VERIFY": "SUCCESS"}
	h := parseHeader(t, full)
	ssl := findSSL(t, h)
	v, _ := ssl.SSLVersion()
	c, _ := ssl.SSLCipher()
	cn, _ := ssl.ClientCN()
	if v != "TLSv1.3" || c != "TLS_AES_128_GCM_SHA256" || cn != "alice" || !ssl.ClientSSL() || !ssl.ClientCertConn() || !ssl.Verified() {
		t.Errorf("SSL TLV: version %q cipher %q cn %q client %#x", v, c, cn, ssl.Client)
	}
	if got := tlvValue(t, h, proxyproto.PP2_TYPE_AUTHORITY); got != "www.example.org" {
		t.Errorf("authority %q", got)
	}
	first, second := tlvValue(t, h, proxyproto.PP2_TYPE_UNIQUE_ID), tlvValue(t, parseHeader(t, full), proxyproto.PP2_TYPE_UNIQUE_ID)
	if first == second || !strings.Contains(first, ".") {
		t.Errorf("unique ids %q and %q, want pid.n, different", first, second)
	}
	bare := parseHeader(t, map[string]string{"SSL_PROTOCOL": "TLSv1.2", "SSL_CIPHER": "ECDHE-RSA-AES128-GCM-SHA256"})
	ssl = findSSL(t, bare)
	if _, ok := ssl.ClientCN(); ok || ssl.ClientCertConn() || ssl.Verified() {
		t.Errorf("no client certificate, yet %+v", ssl)
	}
	if got := tlvValue(t, bare, proxyproto.PP2_TYPE_AUTHORITY); got != "" {
		t.Errorf("no SNI, yet authority %q", got)
	}
}

func parseHeader(t *testing.T, vars map[string]string) *proxyproto.Header {
	t.Helper()
	tlvs, err := proxyTLVs(func(name string) string { return vars[name] })
	if err != nil {
		t.Fatal(err)
	}
	h := proxyproto.HeaderProxyFromAddrs(2, &net.TCPAddr{IP: net.ParseIP("192.0.2.7"), Port: 50000},
		&net.TCPAddr{IP: net.ParseIP("198.51.100.1"), Port: 443})
	if err := h.SetTLVs(tlvs); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if _, err := h.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	got, err := proxyproto.Read(bufio.NewReader(&b))
	if err != nil {
		t.Fatalf("reading back: %v", err)
	}
	return got
}

func findSSL(t *testing.T, h *proxyproto.Header) tlvparse.PP2SSL {
	t.Helper()
	tlvs, _ := h.TLVs()
	ssl, ok := tlvparse.FindSSL(tlvs)
	if !ok {
		t.Fatalf("no SSL TLV in %+v", tlvs)
	}
	return ssl
}

func tlvValue(t *testing.T, h *proxyproto.Header, typ proxyproto.PP2Type) string {
	t.Helper()
	tlvs, err := h.TLVs()
	if err != nil {
		t.Fatal(err)
	}
	for _, tlv := range tlvs {
		if tlv.Type == typ {
			return string(tlv.Value)
		}
	}
	return ""
}
