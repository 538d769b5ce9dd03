package protocol

// Exit codes, as every UCSPI tool uses them.
const (
	ExitOK         = 0
	ExitUsage      = 100 // bad command line, or an unknown control command
	ExitClientCert = 110 // the client's certificate failed verification
	ExitTemp       = 111 // temporary or system failure, TLS handshake failure
)

// The fd map of a TLS worker (argv[0] WorkerArgv0) at exec: 0 and 1 are
// /dev/null, 2 is the supervisor's stderr, and
const (
	WorkerFdSupervisor = 3 // SOCK_SEQPACKET: Msg* between supervisor and worker
	WorkerFdKeyHolder  = 4 // SOCK_SEQPACKET: sign requests to the key holder, for the worker's life
	WorkerFdRoot       = 5 // O_PATH directory: SSL_CHROOT, to chroot into by descriptor; closed once confined
)

// A worker gets each connection's descriptors with MsgSession, in this
// order.
const (
	SessionFdConn        = iota // the TCP connection with the client
	SessionFdCtl                // SOCK_STREAM: the worker's end of $SSLCTLFD
	SessionFdToProgram          // pipe, write end: plaintext from the client
	SessionFdFromProgram        // pipe, read end: plaintext for the client
	SessionFiles                // how many
)

// The fd map of the key holder (argv[0] KeyHolderArgv0): 0 and 1 are
// /dev/null, 2 is the supervisor's stderr.
const (
	KeyHolderFdSupervisor = 3 // SOCK_SEQPACKET: keys in, worker channels in
	KeyHolderFdRoot       = 4 // O_PATH directory: SSL_CHROOT, as WorkerFdRoot
)

// The program's UCSPI-TLS descriptors; their numbers go into $SSLCTLFD,
// $SSLREADFD and $SSLWRITEFD. All are >= 3 because some applications
// treat fd 0 as "missing".
const (
	ProgramFdCtl   = 3
	ProgramFdRead  = 4
	ProgramFdWrite = 5
)

// Role names: the supervisor re-executes its own binary with argv[0] set
// to one of these, so ps shows what each process is.
const (
	WorkerArgv0    = "sslserver-tlsworker"
	KeyHolderArgv0 = "sslserver-keyholder"
)
