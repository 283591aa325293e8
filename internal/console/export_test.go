package console

import "io/fs"

// StaticFiles are the embedded files, for the test that scans them.
func StaticFiles() fs.FS {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err)
	}
	return sub
}
