// The tensor getters and DataRecordTensorWriter, judged by Apache Thrift's
// Rust crate (bpr_thrift_gen, generated at build, used unmodified): records written by
// Apache's encoder are read by the getters (outputs compared with the values
// put in), and the writer's records are read by Apache's decoder.
#![allow(clippy::field_reassign_with_default)]

use bpr_thrift_gen::{data, prediction_service, tensor};

use std::collections::BTreeMap;

use bpr_protocol::request::{Attr, Outputs, RequestOp};
use bpr_protocol::{encode_data_record_tensors, Data, Result, Tensor};
use thrift::protocol::{TBinaryInputProtocol, TBinaryOutputProtocol, TSerializable};
use thrift::OrderedFloat;

use data::DataRecord;
use tensor::{
    COOSparseTensor, DataType, FloatTensor, GeneralTensor, Int32Tensor, Int64Tensor,
    RawTypedTensor, SparseTensor, StringTensor,
};

/// Outputs kept as plain vectors, in order.
#[derive(Debug, Default)]
struct Kept {
    shapes: Vec<Vec<usize>>,
    i64s: BTreeMap<usize, Vec<i64>>,
    u8s: BTreeMap<usize, Vec<u8>>,
    bools: BTreeMap<usize, Vec<bool>>,
    strings: BTreeMap<usize, Vec<Vec<u8>>>,
}

impl Kept {
    fn shape(&mut self, index: usize, dims: &[usize]) -> usize {
        assert_eq!(index, self.shapes.len(), "outputs are asked for in order");
        self.shapes.push(dims.to_vec());
        dims.iter().product()
    }
}

impl Outputs for Kept {
    fn int64(&mut self, index: usize, dims: &[usize]) -> Result<&mut [i64]> {
        let n = self.shape(index, dims);
        Ok(self.i64s.entry(index).or_insert(vec![-7; n]))
    }
    fn float(&mut self, _: usize, _: &[usize]) -> Result<&mut [f32]> {
        unreachable!("no float outputs")
    }
    fn int8(&mut self, _: usize, _: &[usize]) -> Result<&mut [i8]> {
        unreachable!("no int8 outputs")
    }
    fn uint8(&mut self, index: usize, dims: &[usize]) -> Result<&mut [u8]> {
        let n = self.shape(index, dims);
        Ok(self.u8s.entry(index).or_insert(vec![7; n]))
    }
    fn bool(&mut self, index: usize, dims: &[usize]) -> Result<&mut [bool]> {
        let n = self.shape(index, dims);
        Ok(self.bools.entry(index).or_insert(vec![false; n]))
    }
    fn strings(
        &mut self,
        index: usize,
        dims: &[usize],
        values: &mut dyn Iterator<Item = &[u8]>,
    ) -> Result<()> {
        let n = self.shape(index, dims);
        let v: Vec<Vec<u8>> = values.map(<[u8]>::to_vec).collect();
        assert_eq!(v.len(), n);
        self.strings.insert(index, v);
        Ok(())
    }
}

fn apache<T: TSerializable>(value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    let mut p = TBinaryOutputProtocol::new(&mut out, true);
    value.write_to_out_protocol(&mut p).unwrap();
    out
}

fn record(tensors: Vec<(i64, GeneralTensor)>, sparse: Vec<(i64, SparseTensor)>) -> Vec<u8> {
    let mut r = DataRecord::default();
    if !tensors.is_empty() {
        r.tensors = Some(tensors.into_iter().collect());
    }
    if !sparse.is_empty() {
        r.sparse_tensors = Some(sparse.into_iter().collect());
    }
    apache(&r)
}

fn run(op: &str, attrs: &[(&str, Attr<'_>)], hashed: bool, messages: &[&[u8]]) -> Result<Kept> {
    let decode = if hashed {
        "DecodeAndHashDataRecord"
    } else {
        "DecodeDataRecord"
    };
    let mut d = vec![
        ("keep_features", Attr::Ints(&[])),
        ("keep_codes", Attr::Ints(&[])),
        ("label_features", Attr::Ints(&[])),
        ("weight_features", Attr::Ints(&[])),
    ];
    if hashed {
        d.push(("decode_mode", Attr::Int(0)));
    }
    let batch = RequestOp::new(decode, &d)?.decode(messages, true)?;
    let getter = RequestOp::new(op, attrs)?;
    let mut k = Kept::default();
    getter.get(&batch, messages, &mut k)?;
    Ok(k)
}

fn suffix(hashed: bool) -> &'static str {
    if hashed {
        "FromHashedDataRecord"
    } else {
        "FromDataRecord"
    }
}

#[test]
fn get_tensors_reads_apache_written_records() {
    let floats = vec![OrderedFloat(0.5), OrderedFloat(-2.0)];
    let raw = RawTypedTensor::new(DataType::BYTE, vec![0x80, 0x01, 0x02], vec![3]);
    let a = record(
        vec![
            (
                1,
                GeneralTensor::FloatTensor(FloatTensor::new(floats.clone(), vec![2])),
            ),
            (2, GeneralTensor::RawTypedTensor(raw.clone())),
        ],
        vec![],
    );
    let b = record(
        vec![
            (2, GeneralTensor::RawTypedTensor(raw)),
            (
                1,
                GeneralTensor::FloatTensor(FloatTensor::new(floats, None)),
            ),
        ],
        vec![],
    );
    for hashed in [false, true] {
        let op = format!("GetTensors{}", suffix(hashed));
        let attrs = |id| {
            [
                ("assert_shape", Attr::Bool(true)),
                ("feature_id", Attr::Int(id)),
            ]
        };
        let k = run(&op, &attrs(1), hashed, &[&a, &b]).unwrap();
        let want: Vec<u8> = [0.5f64, -2.0]
            .iter()
            .flat_map(|x| x.to_be_bytes())
            .collect();
        assert_eq!(k.strings[&0], vec![want.clone(), want]);
        assert_eq!(k.i64s[&1], vec![2, 2]);
        assert_eq!(k.strings[&2], vec![b"float64".to_vec()]);
        assert_eq!(k.u8s[&3], vec![1]);
        let k = run(&op, &attrs(2), hashed, &[&a, &b]).unwrap();
        assert_eq!(k.strings[&0], vec![vec![0x80, 1, 2]; 2]);
        assert_eq!(k.strings[&2], vec![b"int8".to_vec()]);
        assert_eq!(k.u8s[&3], vec![0]);
        let e = run(&op, &attrs(3), hashed, &[&a, &b]).unwrap_err();
        assert!(e.message().contains("feature_id 3, record 0"), "{e}");
    }
}

#[test]
fn masked_and_string_getters_read_apache_written_records() {
    let a = record(
        vec![(
            5,
            GeneralTensor::StringTensor(StringTensor::new(
                vec!["x".to_string(), "yz".to_string()],
                None,
            )),
        )],
        vec![],
    );
    let b = record(
        vec![(
            6,
            GeneralTensor::Int32Tensor(Int32Tensor::new(vec![1, -1], vec![2])),
        )],
        vec![],
    );
    for hashed in [false, true] {
        let k = run(
            &format!("GetStringTensors{}", suffix(hashed)),
            &[("feature_id", Attr::Int(5))],
            hashed,
            &[&a, &b],
        )
        .unwrap();
        assert_eq!(k.i64s[&0], vec![0, 0]);
        assert_eq!(k.strings[&1], vec![b"x".to_vec(), b"yz".to_vec()]);
        let k = run(
            &format!("GetTensorsWithMissingMask{}", suffix(hashed)),
            &[
                ("assert_shape", Attr::Bool(true)),
                ("feature_id", Attr::Int(6)),
                ("default_shape", Attr::Ints(&[2])),
                ("dtype_size", Attr::Int(4)),
            ],
            hashed,
            &[&a, &b],
        )
        .unwrap();
        let want: Vec<u8> = [1i32, -1].iter().flat_map(|x| x.to_be_bytes()).collect();
        assert_eq!(k.strings[&0], vec![vec![0; 8], want]);
        assert_eq!(k.strings[&1], vec![b"int32".to_vec()]);
        assert_eq!(k.bools[&3], vec![false, true]);
    }
}

#[test]
fn sparse_getter_reads_apache_written_records() {
    let coo = |indices: Vec<i64>, values: Vec<i64>| {
        let n = values.len() as i64;
        SparseTensor::CooSparseTensor(COOSparseTensor::new(
            vec![4, 3],
            Int64Tensor::new(indices, vec![2, n]),
            GeneralTensor::Int64Tensor(Int64Tensor::new(values, None)),
        ))
    };
    let a = record(vec![], vec![(9, coo(vec![0, 3, 2, 1], vec![10, 20]))]);
    let b = record(vec![], vec![]);
    let c = record(vec![], vec![(9, coo(vec![1, 0], vec![30]))]);
    for hashed in [false, true] {
        let op = format!("GetSparseTensors{}", suffix(hashed));
        let k = run(&op, &[("feature_id", Attr::Int(9))], hashed, &[&a, &b, &c]).unwrap();
        assert_eq!(k.i64s[&0], vec![0, 0, 2]);
        let be = |v: &[i64]| v.iter().flat_map(|x| x.to_be_bytes()).collect::<Vec<u8>>();
        assert_eq!(k.strings[&1], vec![be(&[0, 3, 2, 1, 1, 0])]);
        assert_eq!(k.strings[&2], vec![be(&[10, 20, 30])]);
        assert_eq!(k.i64s[&3], vec![3, 4, 3]);
        assert_eq!(k.strings[&4], vec![b"int64".to_vec()]);
        let bad = record(vec![], vec![(9, coo(vec![0, 3], vec![10]))]);
        let e = run(&op, &[("feature_id", Attr::Int(9))], hashed, &[&a, &bad]).unwrap_err();
        assert!(e.message().contains("feature_id 9, record 1"), "{e}");
        assert!(
            e.message()
                .contains("index 3 along dimension 1, outside [0, 3)"),
            "{e}"
        );
    }
}

#[test]
fn writer_records_decode_with_apache() {
    let keys = [3i64, -1, 8];
    let f = [1.5f32, 2.5, -0.0, 4.0];
    let strs = ["a", "bc"];
    let i = [7i64];
    let values = [
        Tensor::new(&[2, 2], Data::F32(&f)).unwrap(),
        Tensor::new(&[2], Data::Str(&strs)).unwrap(),
        Tensor::new(&[], Data::I64(&i)).unwrap(),
    ];
    let bytes =
        encode_data_record_tensors(&Tensor::new(&[3], Data::I64(&keys)).unwrap(), &values).unwrap();
    let mut rest = &bytes[..];
    let mut proto = TBinaryInputProtocol::new(&mut rest, true);
    let r = DataRecord::read_from_in_protocol(&mut proto).unwrap();
    assert!(rest.is_empty(), "{} bytes after the record", rest.len());
    let t = r.tensors.unwrap();
    let content: Vec<u8> = f.iter().flat_map(|x| x.to_le_bytes()).collect();
    assert_eq!(
        t[&3],
        GeneralTensor::RawTypedTensor(RawTypedTensor::new(DataType::FLOAT, content, vec![2, 2]))
    );
    assert_eq!(
        t[&-1],
        GeneralTensor::StringTensor(StringTensor::new(
            vec!["a".to_string(), "bc".to_string()],
            vec![2]
        ))
    );
    assert_eq!(
        t[&8],
        GeneralTensor::RawTypedTensor(RawTypedTensor::new(
            DataType::INT64,
            7i64.to_le_bytes().to_vec(),
            vec![]
        ))
    );
    assert!(r.continuous_features.is_none() && r.sparse_tensors.is_none());
}

#[test]
fn request_encoder_writes_tensors_apache_reads() {
    use bpr_protocol::decode::{GeneralTensor as G, SparseTensor as S};
    use bpr_protocol::request::{encode_batch_prediction_request, Record};
    let mut r = Record::default();
    r.tensors = vec![
        (
            1,
            G::Raw {
                data_type: 0,
                content: 1.5f32.to_le_bytes().to_vec(),
                shape: Some(vec![1]),
            },
        ),
        (2, G::Strings(vec![b"a".to_vec()], None)),
        (3, G::Int32(vec![-4], Some(vec![1]))),
        (4, G::Int64(vec![5], None)),
        (5, G::Float(vec![0.5], None)),
        (6, G::Double(vec![2.5], None)),
        (7, G::Bool(vec![true, false], None)),
        (8, G::Binary(vec![vec![0xff]], None)),
    ];
    r.sparse_tensors = vec![(
        9,
        S::Coo {
            dense_shape: vec![4],
            indices: G::Int64(vec![3], Some(vec![1])),
            values: G::Double(vec![1.0], None),
        },
    )];
    let bytes = encode_batch_prediction_request(&[r], None).unwrap();
    let mut rest = &bytes[..];
    let mut proto = TBinaryInputProtocol::new(&mut rest, true);
    let req =
        prediction_service::BatchPredictionRequest::read_from_in_protocol(&mut proto).unwrap();
    assert!(rest.is_empty());
    let rec = &req.individual_features_list[0];
    let t = rec.tensors.as_ref().unwrap();
    assert_eq!(
        t[&1],
        GeneralTensor::RawTypedTensor(RawTypedTensor::new(
            DataType::FLOAT,
            1.5f32.to_le_bytes().to_vec(),
            vec![1]
        ))
    );
    assert_eq!(
        t[&2],
        GeneralTensor::StringTensor(StringTensor::new(vec!["a".to_string()], None))
    );
    assert_eq!(
        t[&3],
        GeneralTensor::Int32Tensor(Int32Tensor::new(vec![-4], vec![1]))
    );
    assert_eq!(
        t[&4],
        GeneralTensor::Int64Tensor(Int64Tensor::new(vec![5], None))
    );
    assert_eq!(
        t[&5],
        GeneralTensor::FloatTensor(FloatTensor::new(vec![OrderedFloat(0.5)], None))
    );
    assert_eq!(
        t[&6],
        GeneralTensor::DoubleTensor(tensor::DoubleTensor::new(vec![OrderedFloat(2.5)], None))
    );
    assert_eq!(
        t[&7],
        GeneralTensor::BoolTensor(tensor::BoolTensor::new(vec![true, false], None))
    );
    assert_eq!(
        t[&8],
        GeneralTensor::BinaryTensor(tensor::BinaryTensor::new(vec![vec![0xff]], None))
    );
    let s = rec.sparse_tensors.as_ref().unwrap();
    assert_eq!(
        s[&9],
        SparseTensor::CooSparseTensor(COOSparseTensor::new(
            vec![4],
            Int64Tensor::new(vec![3], vec![1]),
            GeneralTensor::DoubleTensor(tensor::DoubleTensor::new(vec![OrderedFloat(1.0)], None)),
        ))
    );
}
