package protocol_test

import (
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestStdlibOnly keeps the wire contract free of dependencies: both sides and
// third parties must be able to vendor, read and fuzz it alone. Standard
// library paths have no dot in their first element; module paths do. It
// checks protocol and the packages beneath it (fuzzlimit, which protocol's
// fuzz targets use).
func TestStdlibOnly(t *testing.T) {
	fset := token.NewFileSet()
	checked := 0
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if name == "testdata" {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			return nil
		}
		// Every file, whatever its build constraints.
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		checked++
		for _, imp := range f.Imports {
			ipath, err := strconv.Unquote(imp.Path.Value)
			if err != nil {
				t.Fatalf("%s: %v", fset.Position(imp.Pos()), err)
			}
			first, _, _ := strings.Cut(ipath, "/")
			if strings.Contains(first, ".") || ipath == "C" {
				t.Errorf("%s: imports %q; package protocol may import only the standard library", fset.Position(imp.Pos()), ipath)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked == 0 {
		t.Fatal("no non-test .go files found: is the test running in the package directory?")
	}
}
