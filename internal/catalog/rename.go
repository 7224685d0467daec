package catalog

import "strings"

// withSchemas returns a copy of s that reads as if the schemas named in
// renamed (quoted name now -> quoted name before) had their old names:
// in object names and in the server's definitions, which name objects by
// schema. It lets a migration that renamed a schema be compared object by
// object with the schema as it was.
func (s *Snapshot) withSchemas(renamed map[string]string) *Snapshot {
	pairs := make([]string, 0, 2*len(renamed))
	for now, before := range renamed {
		pairs = append(pairs, now+".", before+".")
	}
	rep := strings.NewReplacer(pairs...)
	name := func(n string) string {
		if before, ok := renamed[n]; ok {
			return before
		}
		return n
	}
	c := &Snapshot{Schemas: map[uint32]*Schema{}, Extensions: map[uint32]*Extension{}, Types: map[uint32]*Type{},
		Relations: map[uint32]*Relation{}, Constraints: map[uint32]*Constraint{}, Indexes: map[uint32]*Index{},
		Triggers: map[uint32]*Trigger{}, Functions: map[uint32]*Function{}, Policies: map[uint32]*Policy{},
		Comments: map[ObjectKey]*Comment{}, Grants: map[GrantKey]bool{}, Others: s.Others}
	for k, v := range s.Schemas {
		x := *v
		x.Name = name(x.Name)
		c.Schemas[k] = &x
	}
	for k, v := range s.Extensions {
		x := *v
		x.Schema = name(x.Schema)
		c.Extensions[k] = &x
	}
	cols := func(in []Column) []Column {
		out := make([]Column, len(in))
		for i, col := range in {
			col.Type, col.Default, col.Collation = rep.Replace(col.Type), rep.Replace(col.Default), rep.Replace(col.Collation)
			out[i] = col
		}
		return out
	}
	for k, v := range s.Types {
		x := *v
		x.Name, x.Base, x.Default, x.Attrs = rep.Replace(x.Name), rep.Replace(x.Base), rep.Replace(x.Default), cols(x.Attrs)
		c.Types[k] = &x
	}
	for k, v := range s.Relations {
		x := *v
		x.Schema, x.ViewDef, x.OwnedBy, x.Columns = name(x.Schema), rep.Replace(x.ViewDef), rep.Replace(x.OwnedBy), cols(x.Columns)
		c.Relations[k] = &x
	}
	for k, v := range s.Constraints {
		x := *v
		x.Def = rep.Replace(x.Def)
		c.Constraints[k] = &x
	}
	for k, v := range s.Indexes {
		x := *v
		x.Schema, x.Def = name(x.Schema), rep.Replace(x.Def)
		c.Indexes[k] = &x
	}
	for k, v := range s.Triggers {
		x := *v
		x.Def = rep.Replace(x.Def)
		c.Triggers[k] = &x
	}
	for k, v := range s.Functions {
		x := *v
		x.Schema, x.Signature, x.Def, x.Result = name(x.Schema), rep.Replace(x.Signature), rep.Replace(x.Def), rep.Replace(x.Result)
		c.Functions[k] = &x
	}
	for k, v := range s.Policies {
		x := *v
		x.Using, x.Check = rep.Replace(x.Using), rep.Replace(x.Check)
		c.Policies[k] = &x
	}
	for k, v := range s.Comments {
		x := *v
		x.Identity = rep.Replace(x.Identity)
		if x.Kind == "schema" {
			x.Identity = name(x.Identity)
		}
		c.Comments[k] = &x
	}
	for g := range s.Grants {
		g.Identity = rep.Replace(g.Identity)
		if g.Kind == "SCHEMA" {
			g.Identity = name(g.Identity)
		}
		c.Grants[g] = true
	}
	return c
}
