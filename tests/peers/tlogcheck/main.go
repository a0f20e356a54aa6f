// tlogcheck verifies a plcvault vault's log with Go's checksum-database code
// (golang.org/x/mod/sumdb/note and tlog), an implementation nobody on the plcvault team
// wrote, from which C2SP's signed-note, tlog-checkpoint and tlog-tiles were written down.
//
//	tlogcheck VAULT KEYNAME PUBHEX [INCLUSION.json ...] [CONSISTENCY.json ...]
//	tlogcheck -evidence DIR KEYNAME PUBHEX
//
// It opens VAULT/tlog/checkpoint as a signed note with the Ed25519 key PUBHEX under
// KEYNAME; recomputes the tree from the entries (leaf = the whole entry), read from the C2SP
// entry bundle VAULT/tlog/tile/entries/N when there is one, else from VAULT/log/N.entry,
// and checks the checkpoint's root; checks every tile the checkpoint covers, byte for
// byte, against Go's ReadTileData (the C2SP path, without Go's height element); and checks
// each proof file plcvault printed (`plcvault proof inclusion|consistency --json`). Prints
// one line per check; exits 1 on the first failure. With -evidence it checks a plcvault
// evidence folder instead (see evidence below).
package main

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

func fail(format string, a ...interface{}) {
	fmt.Printf("FAIL "+format+"\n", a...)
	os.Exit(1)
}

// c2spPath is Go's tile path without the height element: tile/L/N[.p/W].
func c2spPath(t tlog.Tile) string {
	p := t.Path() // tile/8/L/N[.p/W]
	return strings.Replace(p, "tile/8/", "tile/", 1)
}

// bundles holds the entry bundles read so far, by number.
var bundles = map[int64][][]byte{}

// readEntry returns leaf i's entry (entry i+1): from its C2SP entry bundle (256 entries,
// each after its length as two big-endian bytes; the bundle's number written as a tile's),
// else from its loose file.
func readEntry(vault string, i int64) ([]byte, error) {
	n := i / 256
	if _, ok := bundles[n]; !ok {
		elem := strings.TrimPrefix(tlog.Tile{H: 8, L: 0, N: n, W: 256}.Path(), "tile/8/0/")
		raw, err := os.ReadFile(filepath.Join(vault, "tlog/tile/entries", elem))
		if err == nil {
			var list [][]byte
			for len(raw) > 0 {
				if len(raw) < 2 {
					return nil, fmt.Errorf("bundle %d: truncated length", n)
				}
				l := int(raw[0])<<8 | int(raw[1])
				if len(raw) < 2+l {
					return nil, fmt.Errorf("bundle %d: entry of %d bytes truncated", n, l)
				}
				list = append(list, raw[2:2+l])
				raw = raw[2+l:]
			}
			if len(list) != 256 {
				return nil, fmt.Errorf("bundle %d holds %d entries, not 256", n, len(list))
			}
			bundles[n] = list
		} else {
			bundles[n] = nil
		}
	}
	if b := bundles[n]; b != nil {
		return b[i%256], nil
	}
	return os.ReadFile(filepath.Join(vault, "log", fmt.Sprintf("%020d.entry", i+1)))
}

func hash(s string) tlog.Hash {
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 32 {
		fail("not a hex hash: %q", s)
	}
	var h tlog.Hash
	copy(h[:], b)
	return h
}

type proofFile struct {
	Type string   `json:"type"`
	Data proofDoc `json:"data"`
}

type proofDoc struct {
	Kind    string   `json:"kind"`
	Entry   int64    `json:"entry"`
	Leaf    string   `json:"leaf"`
	From    int64    `json:"from"`
	OldRoot string   `json:"old_root"`
	Size    int64    `json:"size"`
	Root    string   `json:"root"`
	Proof   []string `json:"proof"`
}

// openCheckpoint opens a signed checkpoint note with verifier v and returns its size and
// root.
func openCheckpoint(path string, v note.Verifier) (int64, tlog.Hash) {
	msg, err := os.ReadFile(path)
	if err != nil {
		fail("read checkpoint: %v", err)
	}
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		fail("note.Open %s: %v", path, err)
	}
	lines := strings.Split(n.Text, "\n")
	if len(lines) < 4 {
		fail("%s: checkpoint text has %d lines", path, len(lines))
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil {
		fail("%s: checkpoint size: %v", path, err)
	}
	rootBytes, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(rootBytes) != 32 {
		fail("%s: checkpoint root: %v", path, err)
	}
	var root tlog.Hash
	copy(root[:], rootBytes)
	return size, root
}

// hexHashes parses hex hashes.
func hexHashes(words []string) []tlog.Hash {
	out := make([]tlog.Hash, 0, len(words))
	for _, w := range words {
		if w != "" {
			out = append(out, hash(w))
		}
	}
	return out
}

// evidence checks a plcvault evidence folder (version 2): the checkpoint's signature,
// every entry's inclusion proof (proofs/G.proofs: "ENTRY HASH..." per line, hex) with
// tlog.CheckRecord over the entry file's record hash, and the consistency proofs from
// the witnessed and the auditor's earlier checkpoint (NAME + NAME.proof, one hex hash
// per line) with tlog.CheckTree.
func evidence(dir string, v note.Verifier) {
	size, root := openCheckpoint(filepath.Join(dir, "checkpoint"), v)
	fmt.Printf("ok checkpoint signature, size %d\n", size)
	files, err := filepath.Glob(filepath.Join(dir, "proofs", "*.proofs"))
	if err != nil || len(files) == 0 {
		fail("no proofs files")
	}
	checked := 0
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			fail("%s: %v", f, err)
		}
		for _, line := range strings.Split(strings.TrimSuffix(string(raw), "\n"), "\n") {
			words := strings.Split(line, " ")
			seq, err := strconv.ParseInt(words[0], 10, 64)
			if err != nil {
				fail("%s: %q is not an entry number", f, words[0])
			}
			data, err := os.ReadFile(filepath.Join(dir, "log", fmt.Sprintf("%020d.entry", seq)))
			if err != nil {
				fail("entry %d: %v", seq, err)
			}
			if err := tlog.CheckRecord(hexHashes(words[1:]), size, root, seq-1, tlog.RecordHash(data)); err != nil {
				fail("inclusion of entry %d in %d: %v", seq, size, err)
			}
			checked++
		}
	}
	fmt.Printf("ok inclusion of %d entries in %d\n", checked, size)
	for _, name := range []string{"witnessed", "from-checkpoint"} {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err != nil {
			continue
		}
		old, oldRoot := openCheckpoint(p, v)
		raw, err := os.ReadFile(p + ".proof")
		if err != nil {
			fail("%s.proof: %v", name, err)
		}
		proof := hexHashes(strings.Split(string(raw), "\n"))
		if err := tlog.CheckTree(proof, size, root, old, oldRoot); err != nil {
			fail("consistency %s %d -> %d: %v", name, old, size, err)
		}
		fmt.Printf("ok consistency %s %d -> %d (%d hashes)\n", name, old, size, len(proof))
	}
}

func main() {
	if len(os.Args) == 5 && os.Args[1] == "-evidence" {
		pub, err := hex.DecodeString(os.Args[4])
		if err != nil || len(pub) != ed25519.PublicKeySize {
			fail("bad public key")
		}
		vkey, err := note.NewEd25519VerifierKey(os.Args[3], ed25519.PublicKey(pub))
		if err != nil {
			fail("verifier key: %v", err)
		}
		v, err := note.NewVerifier(vkey)
		if err != nil {
			fail("verifier: %v", err)
		}
		evidence(os.Args[2], v)
		return
	}
	if len(os.Args) < 4 {
		fail("usage: tlogcheck VAULT KEYNAME PUBHEX [PROOF.json ...]")
	}
	vault, name, pubhex := os.Args[1], os.Args[2], os.Args[3]
	pub, err := hex.DecodeString(pubhex)
	if err != nil || len(pub) != ed25519.PublicKeySize {
		fail("bad public key")
	}
	vkey, err := note.NewEd25519VerifierKey(name, ed25519.PublicKey(pub))
	if err != nil {
		fail("verifier key: %v", err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		fail("verifier: %v", err)
	}
	msg, err := os.ReadFile(filepath.Join(vault, "tlog/checkpoint"))
	if err != nil {
		fail("read checkpoint: %v", err)
	}
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		fail("note.Open: %v", err)
	}
	lines := strings.Split(n.Text, "\n")
	if len(lines) < 4 {
		fail("checkpoint text has %d lines", len(lines))
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil {
		fail("checkpoint size: %v", err)
	}
	rootBytes, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(rootBytes) != 32 {
		fail("checkpoint root: %v", err)
	}
	var root tlog.Hash
	copy(root[:], rootBytes)
	fmt.Printf("ok checkpoint signature %s, origin %s, size %d\n", name, lines[0], size)

	// The tree from the entries, as Go stores it.
	var stored []tlog.Hash
	reader := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			if x >= int64(len(stored)) {
				return nil, fmt.Errorf("no stored hash %d", x)
			}
			out[i] = stored[x]
		}
		return out, nil
	})
	leaves := make([]tlog.Hash, size)
	for i := int64(0); i < size; i++ {
		data, err := readEntry(vault, i)
		if err != nil {
			fail("entry %d: %v", i+1, err)
		}
		leaves[i] = tlog.RecordHash(data)
		hs, err := tlog.StoredHashes(i, data, reader)
		if err != nil {
			fail("stored hashes %d: %v", i, err)
		}
		stored = append(stored, hs...)
	}
	th, err := tlog.TreeHash(size, reader)
	if err != nil {
		fail("tree hash: %v", err)
	}
	if th != root {
		fail("root: Go computes %s from the entries, the checkpoint says %s", th, root)
	}
	fmt.Printf("ok root %s of %d entries\n", th, size)

	// Go publishes every width of a partial tile; plcvault keeps the width its
	// checkpoint needs (C2SP lets older partial tiles go). Check the full tiles and,
	// per level, the widest partial one.
	all := tlog.NewTiles(8, 0, size)
	var check []tlog.Tile
	for i, t := range all {
		if t.W == 256 || i == len(all)-1 || all[i+1].L != t.L {
			check = append(check, t)
		}
	}
	tiles := 0
	for _, t := range check {
		want, err := tlog.ReadTileData(t, reader)
		if err != nil {
			fail("tile data %s: %v", t.Path(), err)
		}
		got, err := os.ReadFile(filepath.Join(vault, "tlog", c2spPath(t)))
		if err != nil {
			fail("tile %s: %v", c2spPath(t), err)
		}
		if string(got) != string(want) {
			fail("tile %s differs from Go's", c2spPath(t))
		}
		tiles++
	}
	fmt.Printf("ok %d tiles\n", tiles)

	for _, f := range os.Args[4:] {
		raw, err := os.ReadFile(f)
		if err != nil {
			fail("%s: %v", f, err)
		}
		var pf proofFile
		if err := json.Unmarshal(raw, &pf); err != nil {
			fail("%s: %v", f, err)
		}
		p := pf.Data
		proof := make([]tlog.Hash, len(p.Proof))
		for i, s := range p.Proof {
			proof[i] = hash(s)
		}
		switch p.Kind {
		case "inclusion":
			if err := tlog.CheckRecord(proof, p.Size, hash(p.Root), p.Entry-1, hash(p.Leaf)); err != nil {
				fail("inclusion of entry %d in %d: %v", p.Entry, p.Size, err)
			}
			if hash(p.Leaf) != leaves[p.Entry-1] {
				fail("inclusion: leaf of entry %d is not the entry's hash", p.Entry)
			}
			fmt.Printf("ok inclusion of entry %d in %d (%d hashes)\n", p.Entry, p.Size, len(proof))
		case "consistency":
			if err := tlog.CheckTree(proof, p.Size, hash(p.Root), p.From, hash(p.OldRoot)); err != nil {
				fail("consistency %d -> %d: %v", p.From, p.Size, err)
			}
			fmt.Printf("ok consistency %d -> %d (%d hashes)\n", p.From, p.Size, len(proof))
		default:
			fail("%s: unknown proof kind %q", f, p.Kind)
		}
	}
}
