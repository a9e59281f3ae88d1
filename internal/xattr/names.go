package xattr

// The two ways systems list attribute names, parsed here without build tags
// so that the tests on one system check the other.

// splitNUL splits a Linux or macOS listxattr result: names each ended by
// a NUL byte.
func splitNUL(buf []byte) []string {
	var names []string
	start := 0
	for i, b := range buf {
		if b != 0 {
			continue
		}
		if i > start {
			names = append(names, string(buf[start:i]))
		}
		start = i + 1
	}
	return names
}

// splitLengthPrefixed splits a FreeBSD extattr_list result: names each
// after a byte giving its length, with no terminator. A name cut short
// (the list grew between two calls) is dropped.
func splitLengthPrefixed(buf []byte) []string {
	var names []string
	for len(buf) > 0 {
		n := int(buf[0])
		if n == 0 || 1+n > len(buf) {
			break
		}
		names = append(names, string(buf[1:1+n]))
		buf = buf[1+n:]
	}
	return names
}
