package protocol

import (
	"strings"
	"testing"

	"github.com/ucspi-tls/sslserver/internal/testutil"
)

// anyType lets a test channel receive every message type.
var anyType Accepts = ^Accepts(0)

var acceptSets = map[string]Accepts{
	"WorkerReports": WorkerReports, "SupervisorOrders": SupervisorOrders,
	"KeyHolderOrders": KeyHolderOrders, "KeyHolderReports": KeyHolderReports,
	"SignRequests": SignRequests, "SignReplies": SignReplies,
	"ClientOrders": ClientOrders, "ClientReports": ClientReports,
	"HandlerOrders": HandlerOrders, "HandlerReports": HandlerReports,
}

// TestAcceptSetsCoverEveryMessage: each type can be received somewhere,
// and a type that carries descriptors only by the one process meant to
// get them.
func TestAcceptSetsCoverEveryMessage(t *testing.T) {
	fdReceivers := map[MsgType]string{MsgKeys: "KeyHolderOrders", MsgNewWorker: "KeyHolderOrders",
		MsgSession: "SupervisorOrders", MsgKeyChannel: "SupervisorOrders", MsgClientConfig: "ClientOrders",
		MsgHandlerSession: "HandlerOrders"}
	for _, m := range sampleMessages() {
		var in []string
		for name, set := range acceptSets {
			if set.Has(m.Type()) {
				in = append(in, name)
			}
		}
		if len(in) == 0 {
			t.Errorf("no channel accepts %T", m)
		}
		if want, ok := fdReceivers[m.Type()]; ok && (len(in) != 1 || in[0] != want) {
			t.Errorf("%T, which carries descriptors, is accepted by %v, want only %s", m, in, want)
		}
	}
}

// TestChannelRefusesTypesItDoesNotAccept plays a hostile peer: every
// message a channel's set leaves out, sent with the descriptors its type
// carries, is an error with those descriptors closed, and the channel
// still delivers the next message it does accept.
func TestChannelRefusesTypesItDoesNotAccept(t *testing.T) {
	for name, set := range acceptSets {
		a, b, err := Pair("test")
		if err != nil {
			t.Fatal(err)
		}
		send, _ := NewChannel(a, anyType)
		recv, _ := NewChannel(b, set)
		for _, m := range sampleMessages() {
			if set.Has(m.Type()) {
				continue
			}
			files := pipes(t, Files(m))
			before := testutil.OwnFdCount(t)
			if err := send.Send(m, files...); err != nil {
				t.Fatalf("%s: Send(%T): %v", name, m, err)
			}
			got, rfiles, err := recv.Recv()
			if err == nil || !strings.Contains(err.Error(), "not accepted") {
				t.Errorf("%s: received %T (%d files), err %v", name, got, len(rfiles), err)
			}
			if after := testutil.OwnFdCount(t); after != before {
				t.Errorf("%s: %T's %d descriptors: %d fds before, %d after", name, m, Files(m), before, after)
			}
		}
		assertDelivers(t, send, recv, set)
		send.Close()
		recv.Close()
	}
}

func assertDelivers(t *testing.T, send, recv *Channel, set Accepts) {
	t.Helper()
	for _, m := range sampleMessages() {
		if !set.Has(m.Type()) {
			continue
		}
		files := pipes(t, Files(m))
		if err := send.Send(m, files...); err != nil {
			t.Fatal(err)
		}
		got, rfiles, err := recv.Recv()
		if err != nil || got.Type() != m.Type() || len(rfiles) != Files(m) {
			t.Fatalf("after refusals, %T arrived as %v with %d files: %v", m, got, len(rfiles), err)
		}
		closeAll(rfiles)
		return
	}
}

// TestSixtyFourDescriptorsOutOfTurn is the attack as a worker would make
// it: Keys with the most descriptors a datagram may carry, sent to the
// supervisor's end of its channel.
func TestSixtyFourDescriptorsOutOfTurn(t *testing.T) {
	a, b, err := Pair("test")
	if err != nil {
		t.Fatal(err)
	}
	worker, _ := NewChannel(a, SupervisorOrders)
	sup, _ := NewChannel(b, WorkerReports)
	defer worker.Close()
	defer sup.Close()
	files := pipes(t, MaxKeyFiles)
	before := testutil.OwnFdCount(t)
	for round := 0; round < 4; round++ {
		if err := worker.Send(&Keys{Count: MaxKeyFiles, UID: 1, GID: 1, Root: "/x"}, files...); err != nil {
			t.Fatal(err)
		}
		if _, _, err := sup.Recv(); err == nil {
			t.Fatal("the supervisor's end accepted Keys")
		}
	}
	if after := testutil.OwnFdCount(t); after != before {
		t.Fatalf("%d fds before, %d after four refused messages of %d files", before, after, MaxKeyFiles)
	}
}
