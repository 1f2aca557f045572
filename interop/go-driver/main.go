// Command otr4driver runs the Go prekey server library (github.com/otrv4/otrng-prekey-server)
// over a line protocol on stdin/stdout, so the otr4 Rust client can be tested against it.
// It is built inside the Go server's tree (copied to cmd/otr4driver by
// interop/run-go-server.sh); it is otr4 project code, not part of the Go server.
//
// Startup (stdout):  "# identity <server identity>", "# pubkey <hex POINT>",
//
//	"# fingerprint <hex 56 bytes, as computed by the Go server>", "# ready".
//
// Each input line:   "<from> <text>"
// Output per input:  one "<from> <reply text>" line per reply, or "<from> !error <message>"
//
//	when Handle failed, then "<from> !end".
//
// Command line "!go-publish <from> <n>": runs the Go client side (otr4_interop.go) against
// this in-process server, publishing n Prekey messages as <from>; prints "# <step>" lines,
// then "<from> !end". Used to seed Go-made Prekey Ensembles for retrieval by otr4.
//
// With -against "<command> <args...>", the driver is instead a Go *client*: it starts that
// command (e.g. the otr4 prekey-server with --transport stdio), publishes as a Go client and
// retrieves, printing "# <step>" lines, and exits 0 if everything passed.
package main

import (
	"bufio"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/otrv4/gotrx"
	pks "github.com/otrv4/otrng-prekey-server"
)

func main() {
	identity := flag.String("identity", "prekey.example.org", "server identity")
	fragLen := flag.Int("fragmentation-length", 0, "fragment replies longer than this (0: never)")
	against := flag.String("against", "", "run as a Go client against this stdio server command")
	flag.Parse()
	if *against != "" {
		os.Exit(runAgainst(*identity, strings.Fields(*against)))
	}

	f := pks.CreateFactory(nil)
	kp := f.CreateKeypair()
	st, err := f.LoadStorageType("in-memory")
	if err != nil {
		fmt.Fprintln(os.Stderr, "storage:", err)
		os.Exit(1)
	}
	srv := f.NewServer(*identity, kp, *fragLen, st, 5*time.Minute, 5*time.Minute, nil)

	out := bufio.NewWriter(os.Stdout)
	fp := kp.Fingerprint()
	fmt.Fprintf(out, "# identity %s\n", *identity)
	fmt.Fprintf(out, "# pubkey %s\n", hex.EncodeToString(kp.(*gotrx.Keypair).Pub.K().DSAEncode()))
	fmt.Fprintf(out, "# fingerprint %s\n", hex.EncodeToString(fp[:]))
	fmt.Fprintln(out, "# ready")
	out.Flush()

	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 0, 1<<20), 16<<20)
	for in.Scan() {
		line := strings.TrimSpace(in.Text())
		if line == "" {
			continue
		}
		sp := strings.IndexByte(line, ' ')
		if sp < 0 {
			fmt.Fprintf(out, "? !error line without a sender\n? !end\n")
			out.Flush()
			continue
		}
		from, text := line[:sp], line[sp+1:]
		if from == "!go-publish" {
			f := strings.Fields(text)
			n := 0
			if len(f) == 2 {
				n, _ = strconv.Atoi(f[1])
			}
			if len(f) == 2 {
				ex := func(t string) ([]string, error) { return srv.Handle(f[0], t) }
				log, err := pks.Otr4GoPublish(ex, f[0], *identity, n)
				for _, l := range log {
					fmt.Fprintf(out, "# %s\n", l)
				}
				if err != nil {
					fmt.Fprintf(out, "%s !error %s\n", f[0], err)
				}
			}
			fmt.Fprintf(out, "%s !end\n", strings.Fields(text + " ?")[0])
			out.Flush()
			continue
		}
		replies, err := srv.Handle(from, text)
		if err != nil {
			fmt.Fprintf(out, "%s !error %s\n", from, err)
		}
		for _, r := range replies {
			fmt.Fprintf(out, "%s %s\n", from, r)
		}
		fmt.Fprintf(out, "%s !end\n", from)
		out.Flush()
	}
}

// runAgainst drives a stdio server (lines "<from> <text>" in, "<to> <text>" out; nothing is
// answered on error, so a reply is awaited for at most 5 s).
func runAgainst(identity string, argv []string) int {
	if len(argv) == 0 {
		return 2
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return 2
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return 2
	}
	if err := cmd.Start(); err != nil {
		fmt.Println("# cannot start server:", err)
		return 2
	}
	defer func() { stdin.Close(); cmd.Wait() }()
	lines := make(chan string, 64)
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 0, 1<<20), 16<<20)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	exchangeAs := func(from string) pks.Otr4Exchange {
		return func(text string) ([]string, error) {
			if _, err := fmt.Fprintf(stdin, "%s %s\n", from, text); err != nil {
				return nil, err
			}
			var got []string
			wait := 5 * time.Second
			for {
				select {
				case l, ok := <-lines:
					if !ok {
						return got, nil
					}
					if sp := strings.IndexByte(l, ' '); sp > 0 && l[:sp] == from {
						got = append(got, l[sp+1:])
						wait = 300 * time.Millisecond
					}
				case <-time.After(wait):
					return got, nil
				}
			}
		}
	}
	rc := 0
	from := "gopub@example.org"
	log, err := pks.Otr4GoPublish(exchangeAs(from), from, identity, 3)
	for _, l := range log {
		fmt.Println("# publish:", l)
	}
	if err != nil {
		fmt.Println("# publish FAILED:", err)
		rc = 1
	}
	res, err := pks.Otr4GoRetrieve(exchangeAs("goret@example.org"), from)
	fmt.Println("# retrieve:", res)
	if err != nil {
		fmt.Println("# retrieve FAILED:", err)
		rc = 1
	}
	return rc
}
