package app

import (
	"fmt"
	"reflect"
	"time"

	"github.com/spf13/pflag"
)

// BindFlags registers a flag for every tagged field of cfg, defaulting to the
// field's current value, and mentions its environment variable in the usage.
func BindFlags(fs *pflag.FlagSet, cfg *Config) {
	v := reflect.ValueOf(cfg).Elem()
	t := v.Type()
	for i := range t.NumField() {
		field := t.Field(i)
		name := field.Tag.Get("flag")
		if name == "" || name == "-" {
			continue
		}
		usage := fmt.Sprintf("%s [$%s]", field.Tag.Get("usage"), EnvName(name))
		switch p := v.Field(i).Addr().Interface().(type) {
		case *string:
			fs.StringVar(p, name, *p, usage)
		case *bool:
			fs.BoolVar(p, name, *p, usage)
		case *time.Duration:
			fs.DurationVar(p, name, *p, usage)
		case *int:
			fs.IntVar(p, name, *p, usage)
		case *float64:
			fs.Float64Var(p, name, *p, usage)
		case *[]string:
			fs.StringSliceVar(p, name, *p, usage)
		default:
			panic(fmt.Sprintf("app: flag %s: unsupported field type %T", name, p))
		}
	}
}
