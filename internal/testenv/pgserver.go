package testenv

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// PGServer is a throwaway PostgreSQL server a test owns, so it can stop and
// start it without touching the machine's shared server.
type PGServer struct {
	t    testing.TB
	bin  string
	dir  string
	port int
	asPG bool // run the binaries as the postgres user (we are root)
}

// PrivatePostgres initialises a new cluster on a free port and starts it.
// It is stopped when the test ends. Without PostgreSQL's server binaries
// the test is skipped (or fails in strict mode).
func PrivatePostgres(t testing.TB) *PGServer {
	t.Helper()
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(matches) == 0 {
		Missing(t, "no PostgreSQL server binaries (/usr/lib/postgresql/*/bin/initdb)")
	}
	s := &PGServer{t: t, bin: filepath.Dir(matches[len(matches)-1]), asPG: os.Geteuid() == 0}
	base, err := os.MkdirTemp("", "herald-pg")
	if err != nil {
		t.Fatal(err)
	}
	s.dir = filepath.Join(base, "data")
	if s.asPG {
		u, err := user.Lookup("postgres")
		if err != nil {
			Missing(t, "running as root and no postgres user to run a private PostgreSQL as")
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(base, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.port = ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	s.run("initdb", "-D", s.dir, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
	conf := fmt.Sprintf("\nlisten_addresses = '127.0.0.1'\nport = %d\nunix_socket_directories = '%s'\nfsync = on\n", s.port, base)
	f, err := os.OpenFile(filepath.Join(s.dir, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.WriteString(conf)
	f.Close()
	s.Start()
	t.Cleanup(func() {
		_ = s.ctl("stop", "-m", "immediate")
		os.RemoveAll(base)
	})
	return s
}

func (s *PGServer) command(name string, args ...string) *exec.Cmd {
	path := filepath.Join(s.bin, name)
	if s.asPG {
		return exec.Command("runuser", append([]string{"-u", "postgres", "--", path}, args...)...)
	}
	return exec.Command(path, args...)
}

func (s *PGServer) run(name string, args ...string) {
	s.t.Helper()
	if out, err := s.command(name, args...).CombinedOutput(); err != nil {
		s.t.Fatalf("%s: %v\n%s", name, err, out)
	}
}

func (s *PGServer) ctl(args ...string) error {
	full := append([]string{"-D", s.dir, "-w", "-t", "30"}, args...)
	if out, err := s.command("pg_ctl", full...).CombinedOutput(); err != nil {
		return fmt.Errorf("pg_ctl %v: %v\n%s", args, err, out)
	}
	return nil
}

// Start starts the server and waits until it accepts connections.
func (s *PGServer) Start() {
	s.t.Helper()
	if err := s.ctl("start", "-l", filepath.Join(filepath.Dir(s.dir), "log")); err != nil {
		s.t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		c, err := pgx.Connect(ctx, s.URL())
		cancel()
		if err == nil {
			c.Close(context.Background())
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("private PostgreSQL did not come up: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop stops the server at once, cutting every connection.
func (s *PGServer) Stop() {
	s.t.Helper()
	if err := s.ctl("stop", "-m", "fast"); err != nil {
		s.t.Fatal(err)
	}
}

// URL is the server's postgres database.
func (s *PGServer) URL() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", s.port)
}
