package protocol

import "fmt"

// Accepts is the set of message types one end of a channel may receive.
// Every channel is made with one (NewChannel), and Recv refuses any other
// type before decoding it, closing the descriptors that came with it: a
// peer cannot park descriptors in its reader's table by sending, out of
// turn, a message of a type that carries some (a worker sending Keys
// with 64 files to the supervisor, or to the key holder).
type Accepts uint64

// The sets, one for each end of each channel; each names the sender.
var (
	// The supervisor's end of a TLS worker's channel.
	WorkerReports = accepts(MsgWorkerReady, MsgSessionTaken, MsgHandshakeDone, MsgSessionFailed, MsgSessionEnd,
		MsgKeyHolderLost)
	// A TLS worker's end of its channel to the supervisor.
	SupervisorOrders = accepts(MsgWorkerConfig, MsgSession, MsgProgramExited, MsgKeyChannel, MsgClientVerdict)
	// The key holder's end of its channel to the supervisor.
	KeyHolderOrders = accepts(MsgKeys, MsgNewWorker, MsgGrant)
	// The supervisor's end of the key holder's channel.
	KeyHolderReports = accepts(MsgKeysLoaded, MsgKeysFailed)
	// The key holder's end of a worker's key channel.
	SignRequests = accepts(MsgSignRequest, MsgSealTicket, MsgOpenTicket)
	// A worker's end of its key channel.
	SignReplies = accepts(MsgSignature, MsgSignRefused, MsgTicket, MsgTicketState)
	// sslclient's TLS process's end of its channel to sslclient.
	ClientOrders = accepts(MsgClientConfig, MsgProgramExited)
	// sslclient's end of its TLS process's channel.
	ClientReports = accepts(MsgClientReady, MsgHandshakeDone, MsgSessionFailed)
	// An sslhandle handler's end of its channel to the supervisor.
	HandlerOrders = accepts(MsgHandlerSession, MsgHandlerAbort)
	// The supervisor's end of an sslhandle handler's channel.
	HandlerReports = accepts(MsgHandlerEnd)
)

func accepts(types ...MsgType) Accepts {
	var a Accepts
	for _, t := range types {
		if t >= 64 {
			panic(fmt.Sprintf("message type %d does not fit an Accepts set", t))
		}
		a |= 1 << t
	}
	return a
}

// Has reports whether t is in the set.
func (a Accepts) Has(t MsgType) bool { return t < 64 && a&(1<<t) != 0 }
