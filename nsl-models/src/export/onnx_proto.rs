//! The subset of ONNX's protobuf messages an exported network needs, and their encoding.
//!
//! Field numbers are those of `onnx.proto` (ONNX IR version 7): `ModelProto`, `GraphProto`,
//! `NodeProto`, `AttributeProto`, `TensorProto`, `ValueInfoProto` (with `TypeProto.Tensor` and
//! `TensorShapeProto`), `OperatorSetIdProto` and `StringStringEntryProto`. Protobuf wire format:
//! each field is a varint key `field << 3 | wire type`, then a varint (type 0), a 4-byte
//! little-endian value (type 5) or a varint length and the bytes (type 2, strings and messages).

/// ONNX IR version 7 (ONNX 1.8), which opset 13 needs.
pub const IR_VERSION: i64 = 7;
/// The default-domain operator set the graph uses.
pub const OPSET: i64 = 13;

/// `TensorProto.DataType`.
const FLOAT: i64 = 1;
const INT64: i64 = 7;

/// A whole model: one graph, its opset and free-form metadata (`metadata_props`).
#[derive(Clone, Debug, Default)]
pub struct Model {
    pub producer_name: String,
    pub producer_version: String,
    pub doc_string: String,
    pub graph: Graph,
    pub metadata: Vec<(String, String)>,
}

/// A graph: nodes in topological order, constant tensors, and typed inputs and outputs.
#[derive(Clone, Debug, Default)]
pub struct Graph {
    pub name: String,
    pub nodes: Vec<Node>,
    pub initializers: Vec<Initializer>,
    pub inputs: Vec<ValueInfo>,
    pub outputs: Vec<ValueInfo>,
}

/// One operator application.
#[derive(Clone, Debug)]
pub struct Node {
    pub name: String,
    pub op_type: &'static str,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    pub attributes: Vec<(&'static str, Attribute)>,
}

/// An attribute value.
#[derive(Clone, Debug)]
pub enum Attribute {
    Int(i64),
    Ints(Vec<i64>),
    Float(f32),
}

/// A named constant tensor (`TensorProto` with `raw_data`, little-endian).
#[derive(Clone, Debug)]
pub struct Initializer {
    pub name: String,
    pub dims: Vec<i64>,
    pub data: TensorData,
}

#[derive(Clone, Debug)]
pub enum TensorData {
    F32(Vec<f32>),
    I64(Vec<i64>),
}

/// A float tensor's name and shape; a `Dim::Symbol` is a dimension fixed only at run time.
#[derive(Clone, Debug)]
pub struct ValueInfo {
    pub name: String,
    pub dims: Vec<Dim>,
}

#[derive(Clone, Debug)]
pub enum Dim {
    Fixed(i64),
    Symbol(String),
}

impl Model {
    /// The serialized `ModelProto`.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.int(1, IR_VERSION);
        w.string(2, &self.producer_name);
        w.string(3, &self.producer_version);
        w.string(6, &self.doc_string);
        w.message(7, |g| self.graph.encode(g));
        w.message(8, |op| {
            op.string(1, "");
            op.int(2, OPSET);
        });
        for (key, value) in &self.metadata {
            w.message(14, |e| {
                e.string(1, key);
                e.string(2, value);
            });
        }
        w.bytes
    }
}

impl Graph {
    fn encode(&self, w: &mut Writer) {
        for node in &self.nodes {
            w.message(1, |n| node.encode(n));
        }
        w.string(2, &self.name);
        for init in &self.initializers {
            w.message(5, |t| init.encode(t));
        }
        for input in &self.inputs {
            w.message(11, |v| input.encode(v));
        }
        for output in &self.outputs {
            w.message(12, |v| output.encode(v));
        }
    }
}

impl Node {
    fn encode(&self, w: &mut Writer) {
        for input in &self.inputs {
            w.string(1, input);
        }
        for output in &self.outputs {
            w.string(2, output);
        }
        w.string(3, &self.name);
        w.string(4, self.op_type);
        for (name, value) in &self.attributes {
            w.message(5, |a| {
                a.string(1, name);
                // AttributeProto.AttributeType: FLOAT = 1, INT = 2, INTS = 7
                match value {
                    Attribute::Float(f) => {
                        a.float(2, *f);
                        a.int(20, 1);
                    }
                    Attribute::Int(i) => {
                        a.int(3, *i);
                        a.int(20, 2);
                    }
                    Attribute::Ints(v) => {
                        v.iter().for_each(|&i| a.int(8, i));
                        a.int(20, 7);
                    }
                }
            });
        }
    }
}

impl Initializer {
    fn encode(&self, w: &mut Writer) {
        self.dims.iter().for_each(|&d| w.int(1, d));
        let raw: Vec<u8> = match &self.data {
            TensorData::F32(v) => {
                w.int(2, FLOAT);
                v.iter().flat_map(|x| x.to_le_bytes()).collect()
            }
            TensorData::I64(v) => {
                w.int(2, INT64);
                v.iter().flat_map(|x| x.to_le_bytes()).collect()
            }
        };
        w.string(8, &self.name);
        w.field_bytes(9, &raw);
    }
}

impl ValueInfo {
    fn encode(&self, w: &mut Writer) {
        w.string(1, &self.name);
        w.message(2, |ty| {
            ty.message(1, |tensor| {
                tensor.int(1, FLOAT);
                tensor.message(2, |shape| {
                    for dim in &self.dims {
                        shape.message(1, |d| match dim {
                            Dim::Fixed(v) => d.int(1, *v),
                            Dim::Symbol(s) => d.string(2, s),
                        });
                    }
                });
            });
        });
    }
}

/// Protobuf wire-format writer.
#[derive(Default)]
struct Writer {
    bytes: Vec<u8>,
}

impl Writer {
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.bytes.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.bytes.push(v as u8);
    }
    fn key(&mut self, field: u32, wire_type: u8) {
        self.varint(u64::from(field) << 3 | u64::from(wire_type));
    }
    /// An `int32`/`int64`/enum field; negative values take ten bytes (two's complement).
    fn int(&mut self, field: u32, v: i64) {
        self.key(field, 0);
        self.varint(v as u64);
    }
    fn float(&mut self, field: u32, v: f32) {
        self.key(field, 5);
        self.bytes.extend_from_slice(&v.to_le_bytes());
    }
    fn field_bytes(&mut self, field: u32, v: &[u8]) {
        self.key(field, 2);
        self.varint(v.len() as u64);
        self.bytes.extend_from_slice(v);
    }
    fn string(&mut self, field: u32, s: &str) {
        self.field_bytes(field, s.as_bytes());
    }
    /// A nested message written by `body`.
    fn message(&mut self, field: u32, body: impl FnOnce(&mut Writer)) {
        let mut inner = Writer::default();
        body(&mut inner);
        self.field_bytes(field, &inner.bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_and_keys_follow_the_protobuf_wire_format() {
        let mut w = Writer::default();
        w.int(1, 300); // key 0x08, 300 = 0b10_0101100 → AC 02
        w.int(3, -1); // ten bytes of two's complement
        w.string(2, "ab");
        w.float(2, 1.0);
        let mut expected = vec![0x08, 0xAC, 0x02, 0x18];
        expected.extend([0xFF; 9]);
        expected.push(0x01);
        expected.extend([0x12, 2, b'a', b'b', 0x15, 0, 0, 0x80, 0x3F]);
        assert_eq!(w.bytes, expected);
    }
}
