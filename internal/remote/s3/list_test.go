package s3

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/bk-backup/bk/internal/remote"
	"github.com/bk-backup/bk/internal/remote/remotetest"
)

// versitygwPage is a page as versitygw writes it.
const versitygwPage = `<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>soak</Name><Prefix>h4/</Prefix><NextContinuationToken>h4/soak-20300107T023000Z-64a3ca04.share0</NextContinuationToken><KeyCount>3</KeyCount><MaxKeys>3</MaxKeys><Delimiter>/</Delimiter><IsTruncated>true</IsTruncated><Contents><LastModified>2026-11-30T20:15:16Z</LastModified><ChecksumAlgorithm>CRC64NVME</ChecksumAlgorithm><ChecksumType>FULL_OBJECT</ChecksumType><ETag>&#34;b008b160c9fcfa9dcf5a498c4c5e735f&#34;</ETag><Key>h4/soak-20300107T023000Z-64a3ca04.manifest.json</Key><Size>1647</Size><StorageClass>STANDARD</StorageClass></Contents><Contents><LastModified>2026-11-30T20:20:24.123456Z</LastModified><ETag>&#34;934be2b464d88c81aba90c69b2d5037d&#34;</ETag><Key>h4/soak-20300107T023000Z-64a3ca04.r6.manifest.json</Key><Size>1664</Size></Contents><CommonPrefixes><Prefix>h4/sub/</Prefix></CommonPrefixes><Contents><LastModified>2026-11-30T20:20:24Z</LastModified><Key>h4/soak-20300107T023000Z-64a3ca04.share0</Key><Size>2299790</Size><Owner><ID>x</ID><Key>not this</Key></Owner></Contents><EncodingType></EncodingType></ListBucketResult>`

func TestParseListing(t *testing.T) {
	at := func(s string) time.Time {
		tm, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	got, err := parseListing([]byte(versitygwPage))
	if err != nil {
		t.Fatal(err)
	}
	want := listing{truncated: true, next: "h4/soak-20300107T023000Z-64a3ca04.share0", objects: []remote.Info{
		{Name: "h4/soak-20300107T023000Z-64a3ca04.manifest.json", Size: 1647, ModTime: at("2026-11-30T20:15:16Z")},
		{Name: "h4/soak-20300107T023000Z-64a3ca04.r6.manifest.json", Size: 1664, ModTime: at("2026-11-30T20:20:24.123Z")},
		{Name: "h4/soak-20300107T023000Z-64a3ca04.share0", Size: 2299790, ModTime: at("2026-11-30T20:20:24Z")},
		{Name: "h4/sub/"},
	}}
	if !sameListing(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}

	page := func(body string) string {
		return `<?xml version="1.0"?><!-- a comment --><s3:ListBucketResult xmlns:s3="x">` + body + `</s3:ListBucketResult>`
	}
	for _, c := range []struct {
		doc  string
		want []string // the names, or nil for an error
	}{
		{page(`<Contents><Key>a&amp;b&lt;&#x3e;&#65;<![CDATA[<c>]]></Key></Contents>`), []string{"a&b<>A<c>"}},
		{page(`<Contents><s3:Key a=">" b='/>'>x<!-- y -->z<Nested>no</Nested>w</s3:Key></Contents>`), []string{"xzw"}},
		{page(`<Contents><Key>a%2Bb+c%20d</Key></Contents><EncodingType>url</EncodingType>`), []string{"a+b c d"}},
		{page(`<Contents><Key>a%2Bb</Key></Contents>`), []string{"a%2Bb"}},
		{page(`<Contents><Key/></Contents><IsTruncated> false </IsTruncated>`), []string{""}},
		{page(`<CommonPrefixes><Prefix>d/</Prefix></CommonPrefixes><Contents><Key>a</Key><Size> 7 </Size></Contents>`), []string{"a", "d/"}},
		{page(`<Contents><Key>a</Key></Contents><IsTruncated>true</IsTruncated>`), nil},        // no token
		{page(`<Contents><Key>a</Key></Contents><IsTruncated>maybe</IsTruncated>`), nil},       // not a boolean
		{page(`<Contents><Key>a</Key><Size>-</Size></Contents>`), nil},                         // not a number
		{page(`<Contents><Key>a</Key><Size></Size></Contents>`), nil},                          // encoding/xml takes it for 0
		{page(`<Contents><Key>a</Key><LastModified>yesterday</LastModified></Contents>`), nil}, // not a time
		{page(`<Contents><Key>a&bogus;</Key></Contents>`), nil},
		{page(`<Contents><Key>a&#0;</Key></Contents>`), nil},
		{page(`<Contents><Key>a&#xD800;</Key></Contents>`), nil},
		{page(`<Contents><Key>a` + "\r" + `</Key></Contents>`), nil},
		{page(`<Contents><Key>a</Key></Contents><EncodingType>url</EncodingType><Contents><Key>%zz</Key></Contents>`), nil},
		{page(`<Contents><Key>a</Contents></Key>`), nil},
		{page(`<Contents><Key>a</Key>`), nil},
		{`<?xml version="1.0"?><Error><Code>AccessDenied</Code></Error>`, nil},
		{`<!DOCTYPE x><ListBucketResult></ListBucketResult>`, nil},
		{`<ListBucketResult></ListBucketResult><ListBucketResult></ListBucketResult>`, nil},
		{``, nil},
		{`<ListBucketResult`, nil},
		{`<ListBucketResult a="></ListBucketResult>`, nil},
		{page(`<Contents><Key>a<![CDATA[b</Key></Contents>`), nil},
	} {
		l, err := parseListing([]byte(c.doc))
		var names []string
		for _, o := range l.objects {
			names = append(names, o.Name)
		}
		switch {
		case c.want == nil && err == nil:
			t.Errorf("%s: got %q, want an error", c.doc, names)
		case c.want != nil && (err != nil || !slices.Equal(names, c.want)):
			t.Errorf("%s: got %q, %v; want %q", c.doc, names, err, c.want)
		}
	}
}

func sameListing(a, b listing) bool {
	return a.truncated == b.truncated && a.next == b.next && slices.EqualFunc(a.objects, b.objects, func(x, y remote.Info) bool {
		return x.Name == y.Name && x.Size == y.Size && x.ModTime.Equal(y.ModTime) && x.Dir == y.Dir
	})
}

// asMinio decodes a page as minio-go's listing does.
func asMinio(b []byte) (listing, error) {
	var r minio.ListBucketV2Result
	if err := xml.NewDecoder(bytes.NewReader(b)).Decode(&r); err != nil {
		return listing{}, err
	}
	l := listing{truncated: r.IsTruncated, next: r.NextContinuationToken}
	decode := func(name string) (string, error) {
		if r.EncodingType == "url" {
			return url.QueryUnescape(name)
		}
		return name, nil
	}
	for _, o := range r.Contents {
		name, err := decode(o.Key)
		if err != nil {
			return listing{}, err
		}
		l.objects = append(l.objects, remote.Info{Name: name, Size: o.Size, ModTime: o.LastModified.Truncate(time.Millisecond)})
	}
	for _, p := range r.CommonPrefixes {
		name, err := decode(p.Prefix)
		if err != nil {
			return listing{}, err
		}
		l.objects = append(l.objects, remote.Info{Name: name})
	}
	return l, nil
}

// FuzzParseListing holds the decoder to minio-go's: whatever page both
// take, they read alike.
func FuzzParseListing(f *testing.F) {
	f.Add([]byte(versitygwPage))
	f.Add([]byte(`<ListBucketResult><Contents><Key>a&amp;%41</Key><Size>1</Size></Contents><EncodingType>url</EncodingType></ListBucketResult>`))
	f.Add([]byte(`<a:ListBucketResult><b:Contents><Key>x<![CDATA[y]]></Key></b:Contents><CommonPrefixes><Prefix>p/</Prefix></CommonPrefixes></a:ListBucketResult>`))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := parseListing(b)
		if err != nil {
			return
		}
		want, err := asMinio(b)
		if err != nil {
			return
		}
		if !sameListing(got, want) {
			t.Fatalf("%q: decoded as %+v, minio-go's way as %+v", b, got, want)
		}
	})
}

// The quick listing reads what minio-go's does, across pages, of names
// that need escaping and of folders.
func TestListQuickSameAsMinio(t *testing.T) {
	t.Parallel()
	s := server(t)
	r := dial(t, bucket(t, s, "p"), remote.DialOptions{})
	names := []string{"d/a b", "d/a+b", "d/a%2Bb", "d/a&b<c>", "d/é", "d/.x", "d/sub/f", "d/z"}
	for _, name := range names {
		remotetest.Put(t, r, name, []byte(name))
	}
	ctx := context.Background()
	noOwners := false
	var want []remote.Info
	for _, page := range []int{1000, 2} {
		want = nil
		for obj := range r.core.Client.ListObjects(ctx, r.loc.Bucket, minio.ListObjectsOptions{Prefix: "p/d/", FetchOwner: &noOwners, MaxKeys: page}) {
			if obj.Err != nil {
				t.Fatal(obj.Err)
			}
			want = append(want, remote.Info{Name: obj.Key, Size: obj.Size, ModTime: obj.LastModified})
		}
		got, ok := r.listQuick(ctx, "p/d/", 0, page)
		if !ok || !sameListing(listing{objects: got}, listing{objects: want}) {
			t.Errorf("pages of %d: listQuick = %+v, %v; minio-go lists %+v", page, got, ok, want)
		}
	}
	if got, ok := r.listQuick(ctx, "p/d/", 3, 2); !ok || len(got) != 3 || got[2].Name != want[2].Name {
		t.Errorf("the first 3 = %+v, %v; want those of %+v", got, ok, want)
	}
}

// A listing answer the quick decoder does not take is asked for again
// through minio-go, which reads it.
func TestListQuickFallsBack(t *testing.T) {
	t.Parallel()
	s := server(t)
	loc := bucket(t, s, "p")
	target, err := url.Parse(s.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	var quick, other atomic.Int64
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.ModifyResponse = func(resp *http.Response) error {
		if resp.Request.URL.Query().Get("list-type") == "" {
			return nil
		}
		if resp.Request.URL.Query().Get("X-Amz-Signature") == "" {
			other.Add(1)
			return nil
		}
		// The quick listing's answer, with a DOCTYPE it does not take.
		quick.Add(1)
		if agent := resp.Request.UserAgent(); !strings.Contains(agent, " "+filepath.Base(os.Args[0])+"/") {
			t.Errorf("User-Agent %q does not name the tool", agent)
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			return err
		}
		body = bytes.Replace(body, []byte("<ListBucketResult"), []byte("<!DOCTYPE ListBucketResult><ListBucketResult"), 1)
		resp.Body = io.NopCloser(bytes.NewReader(body))
		resp.ContentLength = int64(len(body))
		resp.Header.Set("Content-Length", fmt.Sprint(len(body)))
		return nil
	}
	srv := &http.Server{Handler: proxy}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	loc.Endpoint = "http://" + ln.Addr().String()
	r := dial(t, loc, remote.DialOptions{})
	remotetest.Put(t, r, "d/a", []byte("a"))
	files, err := r.List(context.Background(), "d")
	if err != nil || len(files) != 1 || files[0].Name != "a" || files[0].Size != 1 {
		t.Fatalf("List = %+v, %v; want the file a", files, err)
	}
	if quick.Load() != 1 || other.Load() != 1 {
		t.Fatalf("%d quick listings and %d through minio-go, want one of each", quick.Load(), other.Load())
	}
}

// BenchmarkParseListing decodes a page of 767 objects (the soak's S3
// host late in its year), here and as minio-go does.
func BenchmarkParseListing(b *testing.B) {
	var doc strings.Builder
	doc.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n" + `<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>soak</Name><Prefix>h4/</Prefix><KeyCount>767</KeyCount><MaxKeys>1000</MaxKeys><Delimiter>/</Delimiter><IsTruncated>false</IsTruncated>`)
	for i := range 767 {
		fmt.Fprintf(&doc, `<Contents><LastModified>2026-11-30T20:15:16Z</LastModified><ChecksumAlgorithm>CRC64NVME</ChecksumAlgorithm><ChecksumType>FULL_OBJECT</ChecksumType><ETag>&#34;b008b160c9fcfa9dcf5a498c4c5e%04x&#34;</ETag><Key>h4/soak-20300107T023000Z-64a3%04x.share3</Key><Size>1647</Size><StorageClass>STANDARD</StorageClass></Contents>`, i, i)
	}
	doc.WriteString(`<EncodingType></EncodingType></ListBucketResult>`)
	page := []byte(doc.String())
	for _, dec := range []struct {
		name string
		fn   func([]byte) (listing, error)
	}{{"quick", parseListing}, {"minio", asMinio}} {
		b.Run(dec.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(page)))
			for b.Loop() {
				if l, err := dec.fn(page); err != nil || len(l.objects) != 767 {
					b.Fatal(len(l.objects), err)
				}
			}
		})
	}
}
