// Package kinds registers every kind of host with package remote. Import
// it for its side effect where hosts-file lines or manifests are read; a
// new kind of host is one package and one line here.
package kinds

import (
	_ "github.com/bk-backup/bk/internal/remote/local"  // folders: /path, file:///path
	_ "github.com/bk-backup/bk/internal/remote/rclone" // rclone:remote:path
	_ "github.com/bk-backup/bk/internal/remote/s3"     // s3://bucket/prefix
	_ "github.com/bk-backup/bk/internal/remote/sftp"   // sftp://host/path, host:path
)
