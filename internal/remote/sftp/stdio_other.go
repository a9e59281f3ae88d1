//go:build !unix

package sftp

import (
	"io"
	"os/exec"
)

// sshStdio connects ssh's stdin and stdout to pipes and returns their
// other ends: answers and requests; os/exec closes what it must.
func sshStdio(cmd *exec.Cmd) (answers io.Reader, requests io.WriteCloser, closeAfterStart, closeAfterWait func(), err error) {
	requests, err = cmd.StdinPipe()
	if err != nil {
		return nil, nil, nil, nil, err
	}
	answers, err = cmd.StdoutPipe()
	if err != nil {
		return nil, nil, nil, nil, err
	}
	return answers, requests, func() {}, func() {}, nil
}
