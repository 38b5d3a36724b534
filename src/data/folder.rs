//! A folder of images per class (`root/<class>/<image>.png|jpg`), as torchvision's ImageFolder.

use super::{Dataset, DatasetMeta};
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

const EXTENSIONS: [&str; 4] = ["png", "jpg", "jpeg", "bmp"];

/// Loads `root/<class>/*.{png,jpg,jpeg}`; classes are the sub-folder names in sorted order.
/// All images must have one size unless `resize` gives (height, width). Images are kept
/// grey-scale (1 channel) when all of them are grey, else converted to RGB.
pub fn load_image_folder(root: &Path, resize: Option<(u32, u32)>, hflip: bool) -> Result<Dataset> {
    let read_dir = |p: &Path| -> Result<Vec<PathBuf>> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(p).map_err(|e| Error::io(p, e))?.filter_map(|e| e.ok().map(|e| e.path())).collect();
        v.sort();
        Ok(v)
    };
    let class_dirs: Vec<PathBuf> = read_dir(root)?.into_iter().filter(|p| p.is_dir()).collect();
    if class_dirs.is_empty() {
        return Err(Error::invalid(format!("{} has no class sub-folders", root.display()), "lay images out as root/<class>/<image>.png"));
    }
    let mut files = Vec::new();
    for (label, dir) in class_dirs.iter().enumerate() {
        for f in read_dir(dir)? {
            let ext = f.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
            if ext.is_some_and(|e| EXTENSIONS.contains(&e.as_str())) {
                files.push((f, label as i64));
            }
        }
    }
    if files.is_empty() {
        return Err(Error::invalid(format!("no .png/.jpg images under {}", root.display()), "add images to the class folders"));
    }
    let mut images = Vec::with_capacity(files.len());
    for (path, _) in &files {
        let img = image::open(path).map_err(|e| Error::bad_data_file(path, format!("cannot decode image ({e})")))?;
        let img = match resize {
            Some((h, w)) => img.resize_exact(w, h, image::imageops::FilterType::Triangle),
            None => img,
        };
        images.push(img);
    }
    let (w, h) = (images[0].width(), images[0].height());
    if let Some(i) = images.iter().position(|im| im.width() != w || im.height() != h) {
        return Err(Error::invalid(
            format!("{} is {}x{} but {} is {w}x{h}", files[i].0.display(), images[i].width(), images[i].height(), files[0].0.display()),
            "pass resize: Some((height, width)) to bring all images to one size",
        ));
    }
    let grey = images.iter().all(|im| !im.color().has_color());
    let channels = if grey { 1 } else { 3 };
    let mut pixels = Vec::with_capacity(images.len() * (w * h) as usize * channels);
    for im in &images {
        if grey {
            pixels.extend_from_slice(im.to_luma8().as_raw());
        } else {
            let rgb = im.to_rgb8();
            // HWC -> CHW
            for c in 0..3 {
                pixels.extend(rgb.as_raw().iter().skip(c).step_by(3));
            }
        }
    }
    let classes = class_dirs.iter().map(|d| d.file_name().unwrap_or_default().to_string_lossy().into_owned()).collect();
    let labels = files.iter().map(|(_, l)| *l).collect();
    let name = root.file_name().unwrap_or_default().to_string_lossy().into_owned();
    let meta = DatasetMeta { name, provenance: format!("image folder {}", root.display()), hflip };
    Dataset::from_raw(pixels, [files.len() as i64, channels as i64, h as i64, w as i64], labels, classes, meta)
}
