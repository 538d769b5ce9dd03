package supervisor

// flavor is what sslserver and sslhandle do differently: their names,
// their command lines, and what runs a session's program side.
type flavor struct {
	name  string
	help  string
	parse func(args []string) (*Options, error)
	// programs returns what runs each session's program side; nil
	// execs the program, as sslserver does.
	programs func(s *Server) programSide
}

var sslserverFlavor = &flavor{
	name:     "sslserver",
	help:     Help,
	parse:    ParseArgs,
	programs: func(*Server) programSide { return nil },
}

// programSide is the seam between sslserver, which execs a program for
// each session, and sslhandle, which hands each session to one of its
// long-lived handler processes. Start gets what the program would get
// (its fds, environment and ids) and returns the session's program side
// as a Process; begin runs once before the first session, end once after
// the last.
type programSide interface {
	Spawner
	begin() error
	end()
}

// programs returns what starts the program side of a session.
func (s *Server) programs() Spawner {
	if s.program == nil {
		return s.spawn
	}
	return s.program
}
