//! jsonb in and out of SQL functions without detours.
//!
//! pgrx's `JsonB` converts through text and `serde_json::Value` both ways. That is fine for small values but costs
//! a parse and a tree per call. Here:
//! - [`JsonbText`] takes a jsonb argument as its JSON text, which serde then parses straight into typed structs.
//! - [`JsonbBuilder`] builds a jsonb result with Postgres' own `pushJsonbValue`, the way `jsonb_agg` does, and can
//!   splice in jsonb values read from table rows *in their binary form* (no text, no re-parse). This is what lets
//!   `analytics.get_trace_tree` nest thousands of spans about as fast as a flat `jsonb_agg` of the same rows.

use std::ffi::CStr;

use pgrx::callconv::{Arg, ArgAbi, BoxRet, FcInfo};
use pgrx::datum::Datum;
use pgrx::fcinfo::direct_function_call_as_datum;
use pgrx::nullable::Nullable;
use pgrx::pg_sys::{self, JsonbIteratorToken as Tok, jbvType};
use pgrx::prelude::*;

/// A jsonb argument as JSON text.
pub struct JsonbText(pub String);

impl JsonbText {
    /// The argument as a serde value, or 22023 naming it when it holds what serde_json cannot (a number beyond
    /// double precision, nesting deeper than 128 levels), where pgrx's `JsonB` panics.
    pub fn parse(&self, name: &str) -> serde_json::Value {
        use crate::bind::OrRaise;
        analytics_core::errors::parse_json_arg(&self.0, name).or_raise()
    }
}

impl FromDatum for JsonbText {
    unsafe fn from_polymorphic_datum(datum: pg_sys::Datum, is_null: bool, _: pg_sys::Oid) -> Option<Self> {
        if is_null {
            return None;
        }
        unsafe {
            let detoasted = pg_sys::pg_detoast_datum_packed(datum.cast_mut_ptr());
            let cstr = direct_function_call_as_datum(pg_sys::jsonb_out, &[Some(pg_sys::Datum::from(detoasted))])
                .expect("jsonb_out returns text");
            let ptr = cstr.cast_mut_ptr::<std::ffi::c_char>();
            let text = CStr::from_ptr(ptr).to_string_lossy().into_owned();
            pg_sys::pfree(ptr.cast());
            Some(JsonbText(text))
        }
    }
}

impl IntoDatum for JsonbText {
    fn into_datum(self) -> Option<pg_sys::Datum> {
        // only used as an argument type; converting back goes through jsonb_in
        let c = std::ffi::CString::new(self.0).ok()?;
        unsafe { direct_function_call_as_datum(pg_sys::jsonb_in, &[Some(pg_sys::Datum::from(c.as_ptr()))]) }
    }
    fn type_oid() -> pg_sys::Oid {
        pg_sys::JSONBOID
    }
}

impl_sql_translatable!(JsonbText, "jsonb");

unsafe impl<'fcx> ArgAbi<'fcx> for JsonbText {
    unsafe fn unbox_arg_unchecked(arg: Arg<'_, 'fcx>) -> Self {
        let index = arg.index();
        unsafe { arg.unbox_arg_using_from_datum().unwrap_or_else(|| panic!("argument {index} must not be null")) }
    }

    unsafe fn unbox_nullable_arg(arg: Arg<'_, 'fcx>) -> Nullable<Self> {
        unsafe { arg.unbox_arg_using_from_datum().into() }
    }
}

/// A finished jsonb value (a pointer to a `Jsonb` varlena in the function's memory context).
pub struct RawJsonb(pg_sys::Datum);

impl IntoDatum for RawJsonb {
    fn into_datum(self) -> Option<pg_sys::Datum> {
        Some(self.0)
    }
    fn type_oid() -> pg_sys::Oid {
        pg_sys::JSONBOID
    }
}

impl FromDatum for RawJsonb {
    unsafe fn from_polymorphic_datum(datum: pg_sys::Datum, is_null: bool, _: pg_sys::Oid) -> Option<Self> {
        (!is_null).then_some(RawJsonb(datum))
    }
}

impl_sql_translatable!(RawJsonb, "jsonb");

unsafe impl<'fcx> ArgAbi<'fcx> for RawJsonb {
    unsafe fn unbox_arg_unchecked(arg: Arg<'_, 'fcx>) -> Self {
        let index = arg.index();
        unsafe { arg.unbox_arg_using_from_datum().unwrap_or_else(|| panic!("argument {index} must not be null")) }
    }

    unsafe fn unbox_nullable_arg(arg: Arg<'_, 'fcx>) -> Nullable<Self> {
        unsafe { arg.unbox_arg_using_from_datum().into() }
    }
}

/// A datum of any type, for passing values built with pg_sys (e.g. a jsonb[]) as SPI arguments together with
/// their type oid (`DatumWithOid::new(RawDatum(d), oid)`).
pub struct RawDatum(pub pg_sys::Datum);

impl IntoDatum for RawDatum {
    fn into_datum(self) -> Option<pg_sys::Datum> {
        Some(self.0)
    }
    fn type_oid() -> pg_sys::Oid {
        pg_sys::ANYOID
    }
}

unsafe impl BoxRet for RawJsonb {
    unsafe fn box_into<'fcx>(self, fcinfo: &mut FcInfo<'fcx>) -> Datum<'fcx> {
        unsafe { fcinfo.return_raw_datum(self.0) }
    }
}

/// Incremental jsonb construction with `pushJsonbValue`. Keys and strings are copied into palloc'd memory, so the
/// builder never points at Rust memory; jsonb values spliced in with [`JsonbBuilder::jsonb`] or
/// [`JsonbBuilder::text`] must stay alive until [`JsonbBuilder::finish`] (rows of an open SPI result do).
pub struct JsonbBuilder {
    state: *mut pg_sys::JsonbParseState,
    last: *mut pg_sys::JsonbValue,
    /// true for each open object, false for each open array
    open: Vec<bool>,
}

impl Default for JsonbBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl JsonbBuilder {
    pub fn new() -> Self {
        JsonbBuilder { state: std::ptr::null_mut(), last: std::ptr::null_mut(), open: Vec::new() }
    }

    fn push(&mut self, tok: Tok::Type, v: *mut pg_sys::JsonbValue) {
        self.last = unsafe { pg_sys::pushJsonbValue(&mut self.state, tok, v) };
    }

    fn push_value(&mut self, mut v: pg_sys::JsonbValue) {
        let tok = if self.open.last() == Some(&true) { Tok::WJB_VALUE } else { Tok::WJB_ELEM };
        self.push(tok, &mut v);
    }

    pub fn begin_object(&mut self) {
        self.push(Tok::WJB_BEGIN_OBJECT, std::ptr::null_mut());
        self.open.push(true);
    }

    pub fn end_object(&mut self) {
        let closed = self.open.pop();
        debug_assert_eq!(closed, Some(true), "end_object closes an object");
        self.push(Tok::WJB_END_OBJECT, std::ptr::null_mut());
    }

    pub fn begin_array(&mut self) {
        self.push(Tok::WJB_BEGIN_ARRAY, std::ptr::null_mut());
        self.open.push(false);
    }

    pub fn end_array(&mut self) {
        let closed = self.open.pop();
        debug_assert_eq!(closed, Some(false), "end_array closes an array");
        self.push(Tok::WJB_END_ARRAY, std::ptr::null_mut());
    }

    fn string_value(s: &str) -> pg_sys::JsonbValue {
        let mut v = pg_sys::JsonbValue { type_: jbvType::jbvString, ..Default::default() };
        unsafe {
            let buf = pg_sys::palloc(s.len().max(1)) as *mut u8;
            std::ptr::copy_nonoverlapping(s.as_ptr(), buf, s.len());
            v.val.string.val = buf.cast();
            v.val.string.len = s.len() as i32;
        }
        v
    }

    /// An object key. Keys are static strings, referenced in place (Postgres only reads them).
    pub fn key(&mut self, k: &'static str) {
        let mut v = pg_sys::JsonbValue { type_: jbvType::jbvString, ..Default::default() };
        v.val.string.val = k.as_ptr() as *mut std::ffi::c_char;
        v.val.string.len = k.len() as i32;
        self.push(Tok::WJB_KEY, &mut v);
    }

    pub fn string(&mut self, s: &str) {
        self.push_value(Self::string_value(s));
    }

    /// A text datum as a JSON string, referenced in place (no copy).
    ///
    /// # Safety
    /// `datum` must be a valid text datum that outlives `finish`.
    pub unsafe fn text(&mut self, datum: pg_sys::Datum) {
        unsafe {
            let t = pg_sys::pg_detoast_datum_packed(datum.cast_mut_ptr());
            let mut v = pg_sys::JsonbValue { type_: jbvType::jbvString, ..Default::default() };
            v.val.string.val = pgrx::vardata_any(t) as *mut std::ffi::c_char;
            v.val.string.len = pgrx::varsize_any_exhdr(t) as i32;
            self.push_value(v);
        }
    }

    pub fn null(&mut self) {
        self.push_value(pg_sys::JsonbValue { type_: jbvType::jbvNull, ..Default::default() });
    }

    pub fn bool(&mut self, b: bool) {
        let mut v = pg_sys::JsonbValue { type_: jbvType::jbvBool, ..Default::default() };
        v.val.boolean = b;
        self.push_value(v);
    }

    fn numeric(&mut self, n: pg_sys::Datum) {
        let mut v = pg_sys::JsonbValue { type_: jbvType::jbvNumeric, ..Default::default() };
        v.val.numeric = n.cast_mut_ptr();
        self.push_value(v);
    }

    pub fn i64(&mut self, i: i64) {
        let n = unsafe { direct_function_call_as_datum(pg_sys::int8_numeric, &[Some(pg_sys::Datum::from(i))]) };
        self.numeric(n.expect("int8_numeric returns a numeric"));
    }

    /// A finite float as a JSON number (non-finite values become null: JSON has no NaN).
    pub fn f64(&mut self, f: f64) {
        if !f.is_finite() {
            return self.null();
        }
        if f.fract() == 0.0 && f.abs() < 1e15 {
            return self.i64(f as i64); // same JSON number, cheaper conversion
        }
        let n = unsafe { direct_function_call_as_datum(pg_sys::float8_numeric, &[f.into_datum()]) };
        self.numeric(n.expect("float8_numeric returns a numeric"));
    }

    pub fn key_string(&mut self, k: &'static str, s: &str) {
        self.key(k);
        self.string(s);
    }
    pub fn key_i64(&mut self, k: &'static str, i: i64) {
        self.key(k);
        self.i64(i);
    }
    pub fn key_f64(&mut self, k: &'static str, f: f64) {
        self.key(k);
        self.f64(f);
    }
    pub fn key_bool(&mut self, k: &'static str, b: bool) {
        self.key(k);
        self.bool(b);
    }

    /// Splices a whole jsonb value (given as a jsonb Datum) in as the next value or element.
    ///
    /// # Safety
    /// `datum` must be a valid jsonb datum that outlives `finish`.
    pub unsafe fn jsonb(&mut self, datum: pg_sys::Datum) {
        unsafe {
            let jb = pg_sys::pg_detoast_datum(datum.cast_mut_ptr()) as *mut pg_sys::Jsonb;
            let mut v = pg_sys::JsonbValue { type_: jbvType::jbvBinary, ..Default::default() };
            v.val.binary.data = &mut (*jb).root;
            v.val.binary.len = pgrx::varsize_any_exhdr(jb.cast()) as i32;
            self.push_value(v);
        }
    }

    /// The finished value. Every object and array must be closed.
    pub fn finish(self) -> RawJsonb {
        assert!(self.open.is_empty() && !self.last.is_null(), "jsonb builder finished with open containers");
        unsafe { RawJsonb(pg_sys::Datum::from(pg_sys::JsonbValueToJsonb(self.last))) }
    }
}

/// Builds a one-dimensional array of a varlena element type (text, jsonb) from the elements' payloads (the bytes
/// after the 4-byte varlena header), writing each element once, straight into the array's memory. This is what
/// `construct_md_array` produces, without first making a separate datum per element.
pub fn varlena_array(elem_type: pg_sys::Oid, items: &[Option<&[u8]>]) -> pg_sys::Datum {
    const HEADER: usize = std::mem::size_of::<pg_sys::ArrayType>() + 2 * std::mem::size_of::<i32>();
    let maxalign = |n: usize| (n + 7) & !7;
    let intalign = |n: usize| (n + 3) & !3;
    let n = items.len();
    let has_nulls = items.iter().any(Option::is_none);
    let overhead = if has_nulls { maxalign(HEADER + n.div_ceil(8)) } else { maxalign(HEADER) };
    let data_len: usize = items.iter().flatten().map(|b| intalign(4 + b.len())).sum();
    let total = overhead + data_len;
    unsafe {
        let base = pg_sys::palloc0(total) as *mut u8;
        pgrx::set_varsize_4b(base.cast(), total as i32);
        let array = base as *mut pg_sys::ArrayType;
        (*array).ndim = 1;
        (*array).dataoffset = if has_nulls { overhead as i32 } else { 0 };
        (*array).elemtype = elem_type;
        let dims = base.add(std::mem::size_of::<pg_sys::ArrayType>()) as *mut i32;
        *dims = n as i32; // dimension
        *dims.add(1) = 1; // lower bound
        let bitmap = base.add(HEADER);
        let mut at = overhead;
        for (i, item) in items.iter().enumerate() {
            if let Some(bytes) = item {
                if has_nulls {
                    *bitmap.add(i / 8) |= 1 << (i % 8);
                }
                let elem = base.add(at);
                pgrx::set_varsize_4b(elem.cast(), (4 + bytes.len()) as i32);
                std::ptr::copy_nonoverlapping(bytes.as_ptr(), elem.add(4), bytes.len());
                at += intalign(4 + bytes.len());
            }
        }
        pg_sys::Datum::from(base)
    }
}
