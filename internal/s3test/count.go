package s3test

import (
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/minio/minio-go/v7/pkg/signer"
)

// Counter is an HTTP proxy in front of a server that counts the requests
// it passes, by S3 operation, and the TCP connections clients open to it:
// what a store's CPU and a client's round trips are spent on. It can also
// play a store that ignores If-None-Match.
type Counter struct {
	Endpoint string // http://127.0.0.1:port, for clients

	ln    *countingListener
	srv   *http.Server
	mu    sync.Mutex
	count map[string]int
	// prefixes are those of the object listings, in order
	prefixes []string
	// ignoreConditions: If-None-Match is taken off every request, which
	// is signed again with the server's keys
	ignoreConditions atomic.Bool
}

// NewCounter proxies to s.
func NewCounter(s *Server) (*Counter, error) {
	target, err := url.Parse(s.Endpoint)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	c := &Counter{Endpoint: "http://" + ln.Addr().String(), ln: &countingListener{Listener: ln}, count: map[string]int{}}
	proxy := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(target)
		pr.Out.Host = pr.In.Host // signed by the client
		if c.ignoreConditions.Load() && pr.Out.Header.Get("If-None-Match") != "" {
			pr.Out.Header.Del("If-None-Match")
			pr.Out.Header.Del("Authorization")
			pr.Out.Header = signer.SignV4(*pr.Out, s.Access, s.Secret, "", Region).Header
		}
	}}
	c.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		op := Operation(r)
		c.mu.Lock()
		c.count[op]++
		if op == "ListObjects" || op == "ListObjectVersions" {
			c.prefixes = append(c.prefixes, r.URL.Query().Get("prefix"))
		}
		c.mu.Unlock()
		proxy.ServeHTTP(w, r)
	})}
	go c.srv.Serve(c.ln)
	return c, nil
}

// Operation names the S3 operation of a request, as in S3's API
// reference (path-style requests).
func Operation(r *http.Request) string {
	q := r.URL.Query()
	_, key, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	object := key != ""
	has := func(k string) bool { _, ok := q[k]; return ok }
	switch r.Method {
	case http.MethodHead:
		if object {
			return "HeadObject"
		}
		return "HeadBucket"
	case http.MethodGet:
		switch {
		case has("uploadId"):
			return "ListParts"
		case has("uploads"):
			return "ListMultipartUploads"
		case has("versions"):
			return "ListObjectVersions"
		case has("location"):
			return "GetBucketLocation"
		case object:
			return "GetObject"
		}
		return "ListObjects"
	case http.MethodPut:
		if has("partNumber") {
			return "UploadPart"
		}
		return "PutObject"
	case http.MethodPost:
		if has("uploads") {
			return "CreateMultipartUpload"
		}
		if has("uploadId") {
			return "CompleteMultipartUpload"
		}
	case http.MethodDelete:
		if has("uploadId") {
			return "AbortMultipartUpload"
		}
		return "DeleteObject"
	}
	return r.Method + " " + r.URL.Path
}

// Requests is the number of requests of each operation so far.
func (c *Counter) Requests() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.count)
}

// Prefixes are the key prefixes of the object listings so far, in order.
func (c *Counter) Prefixes() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.prefixes)
}

// Total is the number of requests so far.
func (c *Counter) Total() int {
	n := 0
	for _, v := range c.Requests() {
		n += v
	}
	return n
}

// Conns is the number of TCP connections clients opened so far.
func (c *Counter) Conns() int { return int(c.ln.accepted.Load()) }

// Since is what was asked since before (a Requests), as "Op N, …" sorted
// by operation, for messages.
func Since(before, now map[string]int) string {
	var parts []string
	for _, op := range slices.Sorted(maps.Keys(now)) {
		if n := now[op] - before[op]; n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", op, n))
		}
	}
	return strings.Join(parts, ", ")
}

// IgnoreConditions has the proxy play a store that ignores If-None-Match
// (older MinIO, many S3-compatible stores): it takes the header off the
// requests it passes.
func (c *Counter) IgnoreConditions(ignore bool) { c.ignoreConditions.Store(ignore) }

// Close stops the proxy.
func (c *Counter) Close() error { return c.srv.Close() }

type countingListener struct {
	net.Listener
	accepted atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	conn, err := l.Listener.Accept()
	if err == nil {
		l.accepted.Add(1)
	}
	return conn, err
}
