//! `container ls --format`: the part of `docker ps --format` that scripts use. A template is
//! text with `{{.Field}}` placeholders (`ID`, `Names`, `Networks`, `Ports`, `State`, `Status`)
//! or `{{json .}}`; `\t` and `\n` stand for a tab and a newline, and a leading `table ` prints
//! Docker's column headers and aligns the columns.

use crate::api::ContainerSummary;

/// A parsed template.
#[derive(Debug, PartialEq, Eq)]
pub struct Template {
    table: bool,
    parts: Vec<Part>,
}

#[derive(Debug, PartialEq, Eq)]
enum Part {
    Text(String),
    Field(Field),
    Json,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Field {
    Id,
    Names,
    Networks,
    Ports,
    State,
    Status,
}

const FIELDS: [(&str, Field, &str); 6] = [
    ("ID", Field::Id, "CONTAINER ID"),
    ("Names", Field::Names, "NAMES"),
    ("Networks", Field::Networks, "NETWORKS"),
    ("Ports", Field::Ports, "PORTS"),
    ("State", Field::State, "STATE"),
    ("Status", Field::Status, "STATUS"),
];

impl Template {
    pub fn parse(text: &str) -> Result<Template, String> {
        let (table, body) = match text.strip_prefix("table") {
            Some(rest) if rest.is_empty() || rest.starts_with(char::is_whitespace) => {
                (true, rest.trim_start())
            }
            _ => (false, text),
        };
        let body = body.replace("\\t", "\t").replace("\\n", "\n");
        let mut parts = Vec::new();
        let mut rest = body.as_str();
        while let Some(start) = rest.find("{{") {
            if start > 0 {
                parts.push(Part::Text(rest[..start].to_string()));
            }
            let Some(end) = rest[start..].find("}}") else {
                return Err(format!("--format {text:?}: '{{{{' without '}}}}'"));
            };
            let action = rest[start + 2..start + end].trim();
            parts.push(match action {
                "json ." => Part::Json,
                _ => {
                    let name = action.strip_prefix('.').unwrap_or("");
                    match FIELDS.iter().find(|(n, _, _)| *n == name) {
                        Some(&(_, field, _)) => Part::Field(field),
                        None => {
                            let known: Vec<String> =
                                FIELDS.iter().map(|(n, _, _)| format!(".{n}")).collect();
                            return Err(format!(
                                "--format: unknown placeholder {{{{{action}}}}} (switchyard knows {}, and {{{{json .}}}})",
                                known.join(" ")
                            ));
                        }
                    }
                }
            });
            rest = &rest[start + end + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Ok(Template { table, parts })
    }

    /// The lines to print, the header first for `table`.
    pub fn render(&self, list: &[ContainerSummary]) -> Vec<String> {
        let mut rows: Vec<String> = list.iter().map(|c| self.line(c)).collect();
        if self.table {
            let header = self.header();
            rows.insert(0, header);
            return align(&rows);
        }
        rows
    }

    fn header(&self) -> String {
        self.parts
            .iter()
            .map(|p| match p {
                Part::Text(t) => t.clone(),
                Part::Field(f) => FIELDS
                    .iter()
                    .find(|(_, x, _)| x == f)
                    .map(|(_, _, h)| h.to_string())
                    .unwrap_or_default(),
                Part::Json => String::new(),
            })
            .collect()
    }

    fn line(&self, c: &ContainerSummary) -> String {
        self.parts
            .iter()
            .map(|p| match p {
                Part::Text(t) => t.clone(),
                Part::Field(f) => value(c, *f),
                Part::Json => {
                    let map: serde_json::Map<String, serde_json::Value> = FIELDS
                        .iter()
                        .map(|(n, f, _)| (n.to_string(), value(c, *f).into()))
                        .collect();
                    serde_json::Value::Object(map).to_string()
                }
            })
            .collect()
    }
}

fn value(c: &ContainerSummary, field: Field) -> String {
    match field {
        Field::Id => c.id.chars().take(12).collect(),
        Field::Names => c.name.clone(),
        Field::Networks => c
            .endpoints
            .iter()
            .map(|e| e.network.as_str())
            .collect::<Vec<_>>()
            .join(","),
        Field::Ports => c.ports.join(", "),
        // switchyard's containers are namespaces: there while they exist.
        Field::State => "running".into(),
        Field::Status => "Up".into(),
    }
}

/// Tab-separated cells padded to each column's widest, as Docker's tabwriter does.
fn align(rows: &[String]) -> Vec<String> {
    let cells: Vec<Vec<&str>> = rows.iter().map(|r| r.split('\t').collect()).collect();
    let mut widths = Vec::new();
    for row in &cells {
        for (i, cell) in row.iter().enumerate() {
            if widths.len() <= i {
                widths.push(0);
            }
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    cells
        .iter()
        .map(|row| {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                if i + 1 < row.len() {
                    line.push_str(&format!("{cell:<w$}   ", w = widths[i]));
                } else {
                    line.push_str(cell);
                }
            }
            line
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::EndpointSummary;

    fn web() -> ContainerSummary {
        let ep = |network: &str| EndpointSummary {
            network: network.into(),
            interface: "eth0".into(),
            address: "172.17.0.2/16".into(),
            mac: "02:00:00:00:00:02".into(),
        };
        ContainerSummary {
            id: "0123456789abcdef0123".into(),
            name: "web".into(),
            ports: vec!["0.0.0.0:8080->80/tcp".into(), "5432/tcp".into()],
            endpoints: vec![ep("bridge"), ep("back")],
        }
    }

    #[test]
    fn fields_json_and_escapes() {
        let t = Template::parse(r"{{.ID}}\t{{ .Names }} {{.Networks}} [{{.Ports}}]").unwrap();
        assert_eq!(
            t.render(&[web()]),
            ["0123456789ab\tweb bridge,back [0.0.0.0:8080->80/tcp, 5432/tcp]"]
        );
        let json = Template::parse("{{json .}}").unwrap().render(&[web()]);
        let v: serde_json::Value = serde_json::from_str(&json[0]).unwrap();
        assert_eq!(v["Names"], "web");
        assert_eq!(v["State"], "running");
    }

    #[test]
    fn table_prints_dockers_headers_aligned() {
        let t = Template::parse(r"table {{.ID}}\t{{.Names}}").unwrap();
        assert_eq!(
            t.render(&[web()]),
            ["CONTAINER ID   NAMES", "0123456789ab   web"]
        );
    }

    #[test]
    fn unknown_placeholders_and_open_actions_are_refused() {
        let err = Template::parse("{{.Image}}").unwrap_err();
        assert!(err.contains("unknown placeholder {{.Image}}"), "{err}");
        assert!(Template::parse("{{.ID").is_err());
    }
}
