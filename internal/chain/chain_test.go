package chain

import (
	"bufio"
	"bytes"
	"io"
	"strings"
	"testing"
)

func build(t *testing.T, members ...string) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := WriteHeader(&b, len(members)); err != nil {
		t.Fatal(err)
	}
	for i, m := range members {
		if err := WriteMember(&b, "backup-"+string(rune('a'+i)), int64(len(m))); err != nil {
			t.Fatal(err)
		}
		b.WriteString(m)
	}
	return b.Bytes()
}

func readAll(data []byte) ([]string, error) {
	br := bufio.NewReader(bytes.NewReader(data))
	if !IsChain(br) {
		return nil, io.ErrUnexpectedEOF
	}
	r, err := NewReader(br)
	if err != nil {
		return nil, err
	}
	var got []string
	for {
		id, m, err := r.Next()
		if err == io.EOF {
			return got, nil
		}
		if err != nil {
			return got, err
		}
		b, err := io.ReadAll(m)
		if err != nil {
			return got, err
		}
		got = append(got, id+"="+string(b))
	}
}

func TestRoundTrip(t *testing.T) {
	got, err := readAll(build(t, "full archive", "", "third"))
	if err != nil {
		t.Fatal(err)
	}
	if want := "backup-a=full archive backup-b= backup-c=third"; strings.Join(got, " ") != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestRefusals(t *testing.T) {
	good := build(t, "full archive", "incremental")
	for _, c := range []struct {
		name string
		data []byte
		want string
	}{
		{"cut in a member", good[:len(good)-3], "backup backup-b is cut short"},
		{"cut between members", good[:11+1+8+8+12], "cut short: 1 of 2 backups read"},
		{"data after", append(append([]byte{}, good...), 'x'), "data after the last backup"},
		{"version", append(append([]byte("bk-chain"), 2), good[9:]...), "version 2 is not known"},
		{"no members", []byte("bk-chain\x01\x00\x00"), "no backups"},
	} {
		_, err := readAll(c.data)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got error %v, want %q", c.name, err, c.want)
		}
	}
}
