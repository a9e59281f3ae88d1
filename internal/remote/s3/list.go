package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/bk-backup/bk/internal/remote"
)

// A folder's listing is asked for and decoded here rather than by
// minio-go, whose encoding/xml decoding of the answer was 14 % of
// bk-join's CPU time late in the soak's year (767 objects on the S3 host),
// and as much of every other tool's listing of the host. The request is
// presigned by minio-go (SigV4 in the query) and sent through the
// client's own transport. Whatever goes other than plainly (an error, an
// answer other than 200, a page this decoder does not take) makes the
// caller list through minio-go instead, with its retries and its
// errors: this path only ever saves work, never decides an outcome.

// maxListPage bounds the body of a page of the listing: 1,000 keys of
// S3's longest (1,024 bytes) with their records fit well within it.
const maxListPage = 8 << 20

// presignFor is how long a listing request's signature holds: it is sent
// at once.
const presignFor = 15 * time.Minute

// listQuick lists the keys under prefix as ListObjectsV2 gives them to
// minio-go's ListObjects (folders as keys ending in "/"), at most max
// (all with 0), on a host whose files are their current objects, asking
// for page keys at a time. ok is false when it could not.
func (s *S3) listQuick(ctx context.Context, prefix string, max, page int) (infos []remote.Info, ok bool) {
	token := ""
	for {
		p, err := s.listPage(ctx, prefix, token, page)
		if err != nil {
			return nil, false
		}
		for _, o := range p.objects {
			infos = append(infos, o)
			if max > 0 && len(infos) == max {
				return infos, true
			}
		}
		if !p.truncated {
			return infos, true
		}
		if p.next == "" {
			return nil, false
		}
		token = p.next
	}
}

// listPage asks for one page of the listing and decodes it.
func (s *S3) listPage(ctx context.Context, prefix, token string, page int) (listing, error) {
	q := url.Values{"list-type": {"2"}, "prefix": {prefix}, "delimiter": {"/"}, "encoding-type": {"url"},
		"fetch-owner": {"false"}, "max-keys": {strconv.Itoa(page)}}
	if token != "" {
		q.Set("continuation-token", token)
	}
	u, err := s.core.Client.Presign(ctx, http.MethodGet, s.loc.Bucket, "", presignFor, q)
	if err != nil {
		return listing{}, err
	}
	// A store that leaves the request without an answer or a byte for
	// the timeout fails it.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	watchdog := time.AfterFunc(s.timeout, cancel)
	defer watchdog.Stop()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return listing{}, err
	}
	req.Header.Set("User-Agent", s.userAgent)
	resp, err := s.transport.RoundTrip(req)
	if err != nil {
		return listing{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return listing{}, fmt.Errorf("status %s", resp.Status)
	}
	var b bytes.Buffer
	for {
		n, err := b.ReadFrom(io.LimitReader(resp.Body, 64<<10))
		if err != nil {
			return listing{}, err
		}
		if n == 0 {
			return parseListing(b.Bytes())
		}
		if b.Len() > maxListPage {
			return listing{}, errors.New("page too long")
		}
		watchdog.Reset(s.timeout)
	}
}

// listing is what a page of ListObjectsV2 says.
type listing struct {
	objects   []remote.Info // Name is the whole key; Size and ModTime of objects alone
	truncated bool
	next      string // the continuation token
}

// parseListing decodes a ListBucketResult as minio-go does what bk reads
// of it: the objects' keys, sizes and times (to the millisecond), the
// common prefixes as keys of their own after them, and whether and where
// the listing goes on; keys are URL-decoded when the answer says they
// were encoded. Elements are matched by local name, and an element's text
// is all its own character data, as encoding/xml has them. It takes the
// XML that stores write: elements, attributes, character and entity
// references, CDATA, comments and processing instructions; no DOCTYPE, no
// carriage return in a text it reads (XML turns some into line feeds).
func parseListing(b []byte) (listing, error) {
	var l listing
	var prefixes []remote.Info
	var encoding string
	var cur remote.Info
	x := xmlScanner{b: b}
	// path holds the local names of the open elements; text, the
	// character data of those of depth 2 and 3 so far.
	var path [][]byte
	var text [4][]byte
	roots := 0
	for {
		tok, err := x.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return listing{}, err
		}
		switch tok.kind {
		case tokStart:
			path = append(path, localName(tok.name))
			depth := len(path)
			if depth == 1 {
				if roots++; roots > 1 || string(path[0]) != "ListBucketResult" {
					return listing{}, fmt.Errorf("answer holds a %.40q, not one ListBucketResult", tok.name)
				}
			}
			if depth < len(text) {
				text[depth] = text[depth][:0]
			}
			if depth == 2 {
				cur = remote.Info{}
			}
		case tokEnd:
			depth := len(path)
			if depth == 0 || !bytes.Equal(path[depth-1], localName(tok.name)) {
				return listing{}, fmt.Errorf("end tag %.40q out of place", tok.name)
			}
			if depth < len(text) {
				if err := l.take(path, text[depth], &cur, &encoding); err != nil {
					return listing{}, err
				}
			}
			switch {
			case depth == 2 && string(path[1]) == "Contents":
				l.objects = append(l.objects, cur)
			case depth == 2 && string(path[1]) == "CommonPrefixes":
				prefixes = append(prefixes, cur)
			}
			path = path[:depth-1]
		case tokText:
			if depth := len(path); depth < len(text) {
				text[depth] = append(text[depth], tok.text...)
			}
		}
	}
	if len(path) != 0 || roots == 0 {
		return listing{}, errors.New("answer ends inside an element, or holds none")
	}
	l.objects = append(l.objects, prefixes...)
	if encoding == "url" {
		for i := range l.objects {
			name, err := url.QueryUnescape(l.objects[i].Name)
			if err != nil {
				return listing{}, err
			}
			l.objects[i].Name = name
		}
	}
	if l.truncated && l.next == "" {
		return listing{}, errors.New("truncated listing without a continuation token")
	}
	return l, nil
}

// localName is an element's name without its namespace prefix, as
// encoding/xml takes it apart.
func localName(name []byte) []byte {
	if bytes.Count(name, []byte(":")) != 1 {
		return name
	}
	space, local, _ := bytes.Cut(name, []byte(":"))
	if len(space) == 0 || len(local) == 0 {
		return name
	}
	return local
}

// take applies the text of the element ending at path, as encoding/xml
// decodes it into minio-go's fields: a number or a boolean trimmed, but
// nothing for an empty one; a time as time.Time's UnmarshalText.
func (l *listing) take(path [][]byte, text []byte, cur *remote.Info, encoding *string) error {
	if bytes.IndexByte(text, '\r') >= 0 {
		return errBadXML
	}
	switch {
	case len(path) == 2:
		switch string(path[1]) {
		case "IsTruncated":
			v, err := strconv.ParseBool(string(bytes.TrimSpace(text)))
			l.truncated = v
			return err
		case "NextContinuationToken":
			l.next = string(text)
		case "EncodingType":
			*encoding = string(text)
		}
	case len(path) == 3 && string(path[1]) == "Contents":
		switch string(path[2]) {
		case "Key":
			cur.Name = string(text)
		case "Size":
			n, err := strconv.ParseInt(string(bytes.TrimSpace(text)), 10, 64)
			cur.Size = n
			return err
		case "LastModified":
			var t time.Time
			err := t.UnmarshalText(text)
			cur.ModTime = t.Truncate(time.Millisecond)
			return err
		}
	case len(path) == 3 && string(path[1]) == "CommonPrefixes" && string(path[2]) == "Prefix":
		cur.Name = string(text)
	}
	return nil
}

type tokKind int

const (
	tokStart tokKind = iota
	tokEnd
	tokText
)

// token is an element's start or end, or the text of the element it is
// in (one token for all of it up to the next tag, references resolved).
type token struct {
	kind tokKind
	name []byte // in the document
	text []byte // in the document, or in a buffer of its own when references or CDATA were resolved
}

// xmlScanner cuts an XML document into tokens.
type xmlScanner struct {
	b   []byte
	pos int
	// empty: the last start tag was <name/>, whose end comes next
	empty []byte
}

var errBadXML = errors.New("not XML this decoder takes")

func (x *xmlScanner) next() (token, error) {
	if x.empty != nil {
		name := x.empty
		x.empty = nil
		return token{kind: tokEnd, name: name}, nil
	}
	for {
		if x.pos == len(x.b) {
			return token{}, io.EOF
		}
		if x.b[x.pos] != '<' {
			return x.text()
		}
		rest := x.b[x.pos:]
		switch {
		case bytes.HasPrefix(rest, []byte("<?")):
			if err := x.skip("?>"); err != nil {
				return token{}, err
			}
		case bytes.HasPrefix(rest, []byte("<!--")):
			if err := x.skip("-->"); err != nil {
				return token{}, err
			}
		case bytes.HasPrefix(rest, []byte("<![CDATA[")):
			return x.text()
		case bytes.HasPrefix(rest, []byte("<!")):
			return token{}, errBadXML
		case bytes.HasPrefix(rest, []byte("</")):
			end := bytes.IndexByte(rest, '>')
			if end < 0 {
				return token{}, errBadXML
			}
			name := bytes.TrimRight(rest[2:end], " \t\r\n")
			x.pos += end + 1
			return token{kind: tokEnd, name: name}, nil
		default:
			return x.start()
		}
	}
}

// skip moves past the next end.
func (x *xmlScanner) skip(end string) error {
	i := bytes.Index(x.b[x.pos:], []byte(end))
	if i < 0 {
		return errBadXML
	}
	x.pos += i + len(end)
	return nil
}

// start reads a start tag: its name, its attributes skipped (with their
// quoted values, which may hold '>').
func (x *xmlScanner) start() (token, error) {
	i := x.pos + 1
	for i < len(x.b) && !isSpace(x.b[i]) && x.b[i] != '>' && x.b[i] != '/' {
		i++
	}
	name := x.b[x.pos+1 : i]
	if len(name) == 0 {
		return token{}, errBadXML
	}
	for i < len(x.b) {
		switch c := x.b[i]; c {
		case '"', '\'':
			j := bytes.IndexByte(x.b[i+1:], c)
			if j < 0 {
				return token{}, errBadXML
			}
			i += j + 2
		case '>':
			x.pos = i + 1
			return token{kind: tokStart, name: name}, nil
		case '/':
			if i+1 < len(x.b) && x.b[i+1] == '>' {
				x.pos = i + 2
				x.empty = name
				return token{kind: tokStart, name: name}, nil
			}
			return token{}, errBadXML
		default:
			i++
		}
	}
	return token{}, errBadXML
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

// text reads character data up to the next tag, CDATA sections and
// references included.
func (x *xmlScanner) text() (token, error) {
	// Most text is plain: a slice of the document.
	if end := bytes.IndexAny(x.b[x.pos:], "<&"); end > 0 && x.b[x.pos+end] == '<' && !bytes.HasPrefix(x.b[x.pos+end:], []byte("<![CDATA[")) {
		x.pos += end
		return token{kind: tokText, text: x.b[x.pos-end : x.pos]}, nil
	}
	var sb bytes.Buffer
	for x.pos < len(x.b) {
		rest := x.b[x.pos:]
		switch {
		case bytes.HasPrefix(rest, []byte("<![CDATA[")):
			end := bytes.Index(rest, []byte("]]>"))
			if end < 0 {
				return token{}, errBadXML
			}
			sb.Write(rest[len("<![CDATA["):end])
			x.pos += end + len("]]>")
		case rest[0] == '<':
			return token{kind: tokText, text: sb.Bytes()}, nil
		case rest[0] == '&':
			end := bytes.IndexByte(rest, ';')
			if end < 0 {
				return token{}, errBadXML
			}
			r, err := reference(string(rest[1:end]))
			if err != nil {
				return token{}, err
			}
			sb.WriteString(r)
			x.pos += end + 1
		default:
			end := bytes.IndexAny(rest, "<&")
			if end < 0 {
				end = len(rest)
			}
			sb.Write(rest[:end])
			x.pos += end
		}
	}
	return token{kind: tokText, text: sb.Bytes()}, nil
}

// reference resolves an entity or character reference, given without
// its & and ;.
func reference(ref string) (string, error) {
	switch ref {
	case "lt":
		return "<", nil
	case "gt":
		return ">", nil
	case "amp":
		return "&", nil
	case "quot":
		return `"`, nil
	case "apos":
		return "'", nil
	}
	num, ok := strings.CutPrefix(ref, "#")
	if !ok {
		return "", errBadXML
	}
	base := 10
	if hex, ok := strings.CutPrefix(num, "x"); ok {
		num, base = hex, 16
	}
	n, err := strconv.ParseUint(num, base, 32)
	if err != nil || n == 0 || n > 0x10FFFF || (n >= 0xD800 && n <= 0xDFFF) {
		return "", errBadXML
	}
	return string(rune(n)), nil
}
