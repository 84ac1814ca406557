//! The editor's views: toolbar, canvas with the node finder, inspector, output/log/curves
//! panel, status bar, and the unsaved-changes prompt.

use iced::widget::{
    Space, button, canvas, checkbox, column, container, pick_list, pin, row, scrollable, slider, stack, text,
    text_input, tooltip,
};
use iced::{Alignment, Color, Element, Fill, Length};
use petri_api::{ParamKind, ParamSpec, ParamValue, PortType, Value};

use iced_aw::menu::{Item, Menu, MenuBar};

use crate::app::{App, Confirm, EditMsg, FileMsg, FinderMsg, Message, Panel, ParamEdit, Pending, Source, ViewerMsg};
use crate::canvas::{GraphCanvas, category_color, port_color, state_color};
use crate::model;
use crate::run::NodeState;
use crate::viewer::{Curves, ImageCanvas, value_at};

const ERROR: Color = Color { r: 1.0, g: 0.45, b: 0.45, a: 1.0 };
const DIM: Color = Color { r: 0.65, g: 0.67, b: 0.7, a: 1.0 };

fn small<'a>(s: impl Into<String>) -> iced::widget::Text<'a> {
    text(s.into()).size(13)
}

fn tip<'a>(content: impl Into<Element<'a, Message>>, doc: &str) -> Element<'a, Message> {
    if doc.is_empty() {
        return content.into();
    }
    tooltip(
        content,
        container(text(doc.to_string()).size(13)).padding(6).max_width(360).style(container::rounded_box),
        tooltip::Position::Bottom,
    )
    .into()
}

/// A top-level menu title (the menu opens on click).
fn menu_root(label: &str) -> Element<'static, Message> {
    button(text(label.to_string()).size(13)).padding([4, 10]).on_press(Message::Noop).style(button::text).into()
}

/// A menu entry with its shortcut on the right; greyed out without a message.
fn menu_entry(label: String, keys: &str, msg: Option<Message>) -> Element<'static, Message> {
    button(row![text(label).size(13), Space::new().width(Fill), text(keys.to_string()).size(12).color(DIM)].spacing(16))
        .padding([4, 10])
        .width(Fill)
        .on_press_maybe(msg)
        .style(button::text)
        .into()
}

impl App {
    pub fn view(&self) -> Element<'_, Message> {
        let body = row![
            self.canvas_view(),
            container(scrollable(self.inspector()).height(Fill))
                .width(330)
                .height(Fill)
                .padding(8)
                .style(container::bordered_box)
        ]
        .height(Length::FillPortion(5));
        let mut main = column![self.toolbar()];
        if let Some(p) = &self.confirm {
            main = main.push(self.confirm_bar(p));
        }
        main = main.push(body).push(
            container(self.panel_view()).width(Fill).height(Length::FillPortion(3)).style(container::bordered_box),
        );
        main = main.push(container(small(self.status.clone())).padding([2, 8]).width(Fill));
        main.into()
    }

    /// The menu bar (File, Edit, Run, View; iced_aw) and the two run buttons used most.
    fn toolbar(&self) -> Element<'_, Message> {
        let running = self.active.is_some();
        let sel = !self.selection.is_empty();
        let menu = |items: Vec<Item<'static, Message, iced::Theme, iced::Renderer>>| {
            Menu::new(items).width(250).offset(4.0).spacing(1)
        };
        let examples: Vec<_> = self
            .examples
            .iter()
            .map(|p| {
                let label = crate::files::display_name(Some(p), "example");
                Item::new(menu_entry(label, "", Some(Message::File(FileMsg::OpenExample(p.clone())))))
            })
            .collect();
        let recent: Vec<_> = self
            .recent
            .iter()
            .map(|p| {
                Item::new(menu_entry(p.display().to_string(), "", Some(Message::File(FileMsg::OpenPath(p.clone())))))
            })
            .collect();
        let or_none = |v: Vec<Item<'static, Message, iced::Theme, iced::Renderer>>, none: &str| {
            if v.is_empty() { vec![Item::new(menu_entry(none.to_string(), "", None))] } else { v }
        };
        // No nested submenus: iced_aw 0.14.1 panics when a widget operation (focusing the
        // node finder, iced_test's selectors) walks an open menu holding a closed submenu
        // (menu_bar_overlay.rs `operate` indexes the submenu's state that only exists while it
        // is open). So recent files are listed in the File menu and the examples have their own.
        let mut file = vec![
            Item::new(menu_entry("New".into(), "Ctrl+N", Some(Message::File(FileMsg::New)))),
            Item::new(menu_entry("Open…".into(), "Ctrl+O", Some(Message::File(FileMsg::Open)))),
            Item::new(menu_entry("Save".into(), "Ctrl+S", Some(Message::File(FileMsg::Save)))),
            Item::new(menu_entry("Save As…".into(), "Ctrl+Shift+S", Some(Message::File(FileMsg::SaveAs)))),
            Item::new(container(small("Recent").color(DIM)).padding(iced::Padding {
                top: 6.0,
                right: 10.0,
                bottom: 2.0,
                left: 10.0,
            })),
        ];
        file.extend(or_none(recent, "No recent files"));
        let file = menu(file).width(420);
        let examples = menu(or_none(examples, "No examples found"));
        let can_paste = self.clipboard.is_some();
        let edit = menu(vec![
            Item::new(menu_entry(
                "Undo".into(),
                "Ctrl+Z",
                self.history.can_undo().then_some(Message::Edit(EditMsg::Undo)),
            )),
            Item::new(menu_entry(
                "Redo".into(),
                "Ctrl+Shift+Z",
                self.history.can_redo().then_some(Message::Edit(EditMsg::Redo)),
            )),
            Item::new(menu_entry("Copy".into(), "Ctrl+C", sel.then_some(Message::Edit(EditMsg::Copy)))),
            Item::new(menu_entry("Paste".into(), "Ctrl+V", can_paste.then_some(Message::Edit(EditMsg::Paste)))),
            Item::new(menu_entry("Duplicate".into(), "Ctrl+D", sel.then_some(Message::Edit(EditMsg::Duplicate)))),
            Item::new(menu_entry(
                "Delete".into(),
                "Delete",
                (sel || self.selected_wire.is_some()).then_some(Message::Edit(EditMsg::Delete)),
            )),
        ]);
        let run = menu(vec![
            Item::new(menu_entry(
                "Run all".into(),
                "Ctrl+Enter",
                (!running).then_some(Message::Run { to_selected: false }),
            )),
            Item::new(menu_entry(
                "Run to selected".into(),
                "Ctrl+Shift+Enter",
                (!running && sel).then_some(Message::Run { to_selected: true }),
            )),
            Item::new(menu_entry("Cancel".into(), "", running.then_some(Message::Cancel))),
        ]);
        let view = menu(vec![Item::new(menu_entry("Fit".into(), "F", Some(Message::Edit(EditMsg::Fit))))]);
        let bar = MenuBar::new(vec![
            Item::with_menu(menu_root("File"), file),
            Item::with_menu(menu_root("Examples"), examples),
            Item::with_menu(menu_root("Edit"), edit),
            Item::with_menu(menu_root("Run"), run),
            Item::with_menu(menu_root("View"), view),
        ])
        .spacing(2)
        .close_on_item_click_global(true)
        .close_on_background_click_global(true);
        row![
            bar,
            Space::new().width(16),
            tip(
                button(text("▶ Run all").size(13))
                    .padding([4, 10])
                    .on_press_maybe((!running).then_some(Message::Run { to_selected: false }))
                    .style(button::success),
                "Run every node that is not up to date (Ctrl+Enter)"
            ),
            tip(
                button(text("Cancel").size(13))
                    .padding([4, 10])
                    .on_press_maybe(running.then_some(Message::Cancel))
                    .style(button::danger),
                "Stop the run (running nodes stop at their next check)"
            ),
        ]
        .spacing(4)
        .padding(6)
        .align_y(Alignment::Center)
        .into()
    }

    fn confirm_bar(&self, p: &Pending) -> Element<'_, Message> {
        let what = match p {
            Pending::Quit => "quitting",
            Pending::New => "starting a new graph",
            _ => "opening another graph",
        };
        container(
            row![
                text(format!("The graph has unsaved changes. Save them before {what}?")).size(14),
                Space::new().width(Fill),
                button(text("Save").size(13))
                    .on_press(Message::File(FileMsg::Confirm(Confirm::Save)))
                    .style(button::success),
                button(text("Discard").size(13))
                    .on_press(Message::File(FileMsg::Confirm(Confirm::Discard)))
                    .style(button::danger),
                button(text("Keep editing").size(13))
                    .on_press(Message::File(FileMsg::Confirm(Confirm::Cancel)))
                    .style(button::secondary),
            ]
            .spacing(8)
            .align_y(Alignment::Center),
        )
        .padding(8)
        .style(container::warning)
        .width(Fill)
        .into()
    }

    fn canvas_view(&self) -> Element<'_, Message> {
        let program = GraphCanvas {
            doc: &self.doc,
            registry: self.registry(),
            cards: &self.cards,
            states: &self.states,
            problems: &self.problems,
            selection: &self.selection,
            selected_wire: self.selected_wire.as_ref(),
            view: self.view,
            grid_cache: &self.grid_cache,
            graph_cache: &self.graph_cache,
            scene: &self.scene,
            known_bounds: (self.canvas_origin.0, self.canvas_origin.1, self.canvas_size.0, self.canvas_size.1),
            hover: &self.hover,
        };
        let c: Element<'_, Message> = Element::from(canvas(program).width(Fill).height(Fill)).map(Message::Canvas);
        let mut layers = stack![c].width(Fill).height(Fill);
        if self.doc.nodes.is_empty() {
            layers = layers
                .push(container(text("Press Tab or double-click here to add a node").size(16).color(DIM)).center(Fill));
        }
        if let Some(f) = &self.finder {
            let results = model::search(self.registry(), &f.query);
            let mut list = column![].spacing(2);
            for (i, s) in results.iter().take(crate::app::FINDER_SHOWN).enumerate() {
                let cat = category_color(&s.category);
                let name = row![
                    container(Space::new().width(8).height(8)).style(move |_t: &iced::Theme| container::Style {
                        background: Some(cat.into()),
                        ..container::Style::default()
                    }),
                    text(s.type_id.clone()).size(14),
                    text(s.category.clone()).size(12).color(DIM),
                ]
                .spacing(6)
                .align_y(Alignment::Center);
                let item = column![name, text(s.doc.clone()).size(11).color(DIM)];
                list = list.push(
                    button(item)
                        .width(Fill)
                        .padding([3, 6])
                        .style(if i == f.highlight { button::secondary } else { button::text })
                        .on_press(Message::Finder(FinderMsg::Pick(s.type_id.clone()))),
                );
            }
            if results.is_empty() {
                list = list.push(small("No node matches."));
            }
            let panel = container(
                column![
                    text_input("Search nodes: name, category, what it does…", &f.query)
                        .id(crate::app::FINDER_INPUT)
                        .on_input(|q| Message::Finder(FinderMsg::Query(q)))
                        .on_submit(Message::Finder(FinderMsg::Submit))
                        .size(14),
                    scrollable(list).height(Length::Shrink),
                    small("↑ ↓ choose, Enter adds it where you opened the finder; Esc closes."),
                ]
                .spacing(6),
            )
            .padding(8)
            .width(340)
            .max_height(420)
            .style(container::rounded_box);
            let x = f.screen.0.clamp(0.0, (self.canvas_size.0 - 340.0).max(0.0));
            let y = f.screen.1.clamp(0.0, (self.canvas_size.1 - 200.0).max(0.0));
            layers = layers.push(pin(panel).x(x).y(y));
        }
        layers.into()
    }

    // ------------------------------------------------------------------------------ inspector

    fn inspector(&self) -> Element<'_, Message> {
        if let Some(e) = &self.selected_wire {
            return column![
                text("Wire").size(18),
                small(format!("{} → {}", e.from, e.to)),
                button(text("Delete wire").size(13)).on_press(Message::Edit(EditMsg::Delete)).style(button::danger),
            ]
            .spacing(8)
            .into();
        }
        if self.selection.len() > 1 {
            return column![
                text(format!("{} nodes selected", self.selection.len())).size(18),
                small("Drag to move them together; Ctrl+C / Ctrl+D to copy or duplicate; Delete to remove."),
            ]
            .spacing(8)
            .into();
        }
        let Some(id) = self.selection.iter().next() else {
            let name =
                if self.doc.meta.name.is_empty() { "Untitled graph".to_string() } else { self.doc.meta.name.clone() };
            return column![
                text(name).size(18),
                small(self.doc.meta.description.clone()),
                small(format!("{} nodes, {} wires", self.doc.nodes.len(), self.doc.edges.len())).color(DIM),
                small("Click a node to see its parameters and results. Tab or double-click on the canvas adds a node; drag from an output port to an input port to connect.").color(DIM),
            ]
            .spacing(8)
            .into();
        };
        let Some(node) = self.doc.nodes.get(id) else { return column![].into() };
        let spec = self.registry().spec(&node.type_id);
        let name_value = self.rename.as_ref().map(|(_, s)| s.clone()).unwrap_or_else(|| id.clone());
        let mut col = column![
            row![
                text_input("node name", &name_value)
                    .on_input(Message::RenameInput)
                    .on_submit(Message::RenameSubmit)
                    .size(16),
            ],
            small(format!("{} v{}", node.type_id, node.version)).color(DIM),
        ]
        .spacing(6);
        let state = self.states.get(id);
        let state_line = match state {
            Some(NodeState::Failed(e)) => small(format!("Failed: {e}")).color(ERROR),
            Some(NodeState::Skipped(r)) => small(format!("Skipped: {r}")).color(state_color(state)),
            Some(NodeState::Running { fraction, message }) => {
                small(format!("Running {:.0}% {message}", fraction * 100.0))
            }
            Some(s) => small(s.label()).color(state_color(state)),
            None => small("stale (not run yet)").color(DIM),
        };
        col = col.push(state_line);
        for p in self.problems.get(id).into_iter().flatten() {
            col = col.push(small(p.clone()).color(ERROR));
        }
        let Some(spec) = spec else {
            col = col.push(
                small("Unknown node type (from a newer Petri or a plugin): kept as is, cannot run.").color(ERROR),
            );
            return col.into();
        };
        col = col.push(text(spec.doc.clone()).size(13));
        if !spec.params.is_empty() {
            col = col.push(text("Parameters").size(15));
        }
        for p in &spec.params {
            col = col.push(self.param_row(id, p, node.params.get(&p.name).unwrap_or(&p.default)));
        }
        let ports = |title: &'static str, list: &[petri_api::PortSpec], output: bool| -> Element<'static, Message> {
            let mut c = column![text(title).size(15)].spacing(3);
            for p in list {
                let ty = p.ty;
                let src = if output {
                    String::new()
                } else {
                    match self.doc.source_of(&petri_engine::PortRef::new(id, &p.name)) {
                        Some(s) => format!(" ← {s}"),
                        None if p.required => " (not connected: required)".into(),
                        None => " (optional)".into(),
                    }
                };
                let line = row![
                    container(Space::new().width(9).height(9)).style(move |_t: &iced::Theme| container::Style {
                        background: Some(port_color(Some(ty)).into()),
                        border: iced::border::rounded(5),
                        ..container::Style::default()
                    }),
                    small(format!("{} ({}){src}", p.name, port_type_name(p.ty))),
                ]
                .spacing(6)
                .align_y(Alignment::Center);
                c = c.push(tip(line, &p.doc));
            }
            c.into()
        };
        if !spec.inputs.is_empty() {
            col = col.push(ports("Inputs", &spec.inputs, false));
        }
        if !spec.outputs.is_empty() {
            col = col.push(ports("Outputs", &spec.outputs, true));
        }
        col.into()
    }

    fn param_row<'a>(&'a self, id: &str, p: &'a ParamSpec, value: &ParamValue) -> Element<'a, Message> {
        let (node, name) = (id.to_string(), p.name.clone());
        let key = (node.clone(), name.clone());
        let msg = {
            let (node, name) = (node.clone(), name.clone());
            move |edit: ParamEdit| Message::Param { node: node.clone(), name: name.clone(), edit }
        };
        let text_value = self.typing.get(&key).cloned().unwrap_or_else(|| model::param_text(value));
        let placeholder = if p.nullable { "(automatic)" } else { "" };
        let entry = {
            let msg = msg.clone();
            text_input(placeholder, &text_value)
                .id(format!("param-{node}-{name}"))
                .on_input(move |s| msg(ParamEdit::Text(s)))
                .size(13)
                .width(Fill)
        };
        let widget: Element<'a, Message> = match &p.kind {
            ParamKind::Bool => {
                let msg = msg.clone();
                checkbox(matches!(value, ParamValue::Bool(true)))
                    .on_toggle(move |b| msg(ParamEdit::Value(ParamValue::Bool(b))))
                    .into()
            }
            ParamKind::Choice(choices) => {
                let msg = msg.clone();
                let current = match value {
                    ParamValue::Str(s) => Some(s.clone()),
                    _ => None,
                };
                pick_list(choices.clone(), current, move |s| msg(ParamEdit::Value(ParamValue::Str(s))))
                    .text_size(13)
                    .width(Fill)
                    .into()
            }
            ParamKind::Int { min: Some(lo), max: Some(hi) } if hi - lo <= 100 => {
                let msg2 = msg.clone();
                let v = match value {
                    ParamValue::Int(i) => *i as f64,
                    _ => *lo as f64,
                };
                row![
                    slider(*lo as f64..=*hi as f64, v, move |x| msg2(ParamEdit::Value(ParamValue::Int(
                        x.round() as i64
                    ))))
                    .step(1.0)
                    .width(Fill),
                    entry.width(64),
                ]
                .spacing(6)
                .align_y(Alignment::Center)
                .into()
            }
            ParamKind::Float { min: Some(lo), max: Some(hi), .. } if hi - lo <= 1000.0 && hi > lo => {
                let msg2 = msg.clone();
                let v = match value {
                    ParamValue::Float(f) => *f,
                    ParamValue::Int(i) => *i as f64,
                    _ => *lo,
                };
                let (lo, hi) = (*lo, *hi);
                let step = nice_step((hi - lo) / 200.0);
                row![
                    slider(lo..=hi, v.clamp(lo, hi), move |x| {
                        let x = ((x / step).round() * step).clamp(lo, hi);
                        msg2(ParamEdit::Value(ParamValue::Float(x)))
                    })
                    .step(step)
                    .width(Fill),
                    entry.width(72),
                ]
                .spacing(6)
                .align_y(Alignment::Center)
                .into()
            }
            ParamKind::Path { .. } => row![
                entry,
                button(text("…").size(13))
                    .padding([3, 8])
                    .style(button::secondary)
                    .on_press(Message::Browse { node: node.clone(), name: name.clone() }),
            ]
            .spacing(4)
            .into(),
            _ => entry.into(),
        };
        let range = range_text(p);
        let mut c =
            column![tip(row![text(p.name.clone()).size(13), small(range).color(DIM)].spacing(6), &p.doc), widget]
                .spacing(2);
        if let Some(err) = self.param_problems.get(&key) {
            c = c.push(small(err.clone()).color(ERROR));
        }
        c.into()
    }

    // ------------------------------------------------------------------------------ panels

    fn panel_view(&self) -> Element<'_, Message> {
        let tab = |label: &'static str, p: Panel| {
            button(text(label).size(13))
                .padding([3, 10])
                .style(if self.panel == p { button::primary } else { button::secondary })
                .on_press(Message::Panel(p))
        };
        let content: Element<'_, Message> = match self.panel {
            Panel::Output => self.output_view(),
            Panel::Log => {
                let mut c = column![].spacing(1);
                for l in self.log.iter().rev().take(400).collect::<Vec<_>>().into_iter().rev() {
                    let failed = l.contains("FAILED") || l.starts_with("cannot run");
                    c = c.push(text(l.clone()).size(12).color(if failed { ERROR } else { Color::WHITE }));
                }
                scrollable(c).anchor_bottom().width(Fill).height(Fill).into()
            }
            Panel::Curves => {
                let node = self
                    .selection
                    .iter()
                    .find(|id| self.metrics.contains_key(*id))
                    .or_else(|| self.metrics.keys().next());
                match node.and_then(|n| self.metrics.get(n).map(|m| (n, m))) {
                    Some((n, series)) => column![
                        small(format!("Training curves of '{n}'")),
                        canvas(Curves { series }).width(Fill).height(Fill)
                    ]
                    .into(),
                    None => small(
                        "No curves yet: training nodes show their loss and validation scores here while they run.",
                    )
                    .into(),
                }
            }
        };
        column![
            row![tab("Output", Panel::Output), tab("Log", Panel::Log), tab("Curves", Panel::Curves)].spacing(4),
            content
        ]
        .spacing(4)
        .padding(6)
        .into()
    }

    fn output_view(&self) -> Element<'_, Message> {
        let Some(id) = (self.selection.len() == 1).then(|| self.selection.iter().next()).flatten() else {
            return small("Select a node to see its result.").color(DIM).into();
        };
        let Some(outputs) = self.outputs_of(id) else {
            let why = match self.states.get(id) {
                Some(NodeState::Failed(e)) => format!("'{id}' failed: {e}"),
                Some(NodeState::Running { .. }) | Some(NodeState::Queued) => format!("'{id}' is running…"),
                _ => format!("'{id}' has no up-to-date result: Run all (Ctrl+Enter) or Run to selected."),
            };
            return small(why).color(DIM).into();
        };
        let port = self.viewer_port(&outputs);
        let mut ports = row![].spacing(4);
        for (name, v) in outputs.iter() {
            let active = port.as_deref() == Some(name.as_str());
            ports = ports.push(
                button(text(format!("{name}: {}", v.summary())).size(12))
                    .padding([2, 8])
                    .style(if active { button::primary } else { button::secondary })
                    .on_press(Message::Viewer(ViewerMsg::Port(name.clone()))),
            );
        }
        let Some(value) = port.and_then(|p| outputs.get(&p).cloned()) else { return ports.into() };
        let body: Element<'_, Message> = match &value {
            Value::Image(_) | Value::Mask(_) | Value::Labels(_) => self.image_view(id, &value),
            Value::Table(t) | Value::Tracks(t) => table_view(t),
            other => small(other.summary()).into(),
        };
        column![scrollable(ports).direction(scrollable::Direction::Horizontal(scrollable::Scrollbar::new())), body]
            .spacing(4)
            .into()
    }

    fn image_view(&self, id: &str, value: &Value) -> Element<'_, Message> {
        let Some(r) = &self.viewer.rendered else { return small("Nothing to show.").into() };
        let v = &self.viewer;
        let sel = v.sel.unwrap_or(crate::viewer::PlaneSel { t: 0, c: 0, z: 0 });
        let has_input = self.input_of(id).is_some();
        let is_labels = matches!(value, Value::Labels(_) | Value::Mask(_));
        let src = |label: &'static str, s: Source, enabled: bool| {
            button(text(label).size(12))
                .padding([2, 8])
                .style(if v.source == s { button::primary } else { button::secondary })
                .on_press_maybe(enabled.then_some(Message::Viewer(ViewerMsg::Source(s))))
        };
        let mut controls = row![
            src("Output", Source::Output, true),
            src("Input", Source::Input, has_input),
            src("Overlay", Source::Overlay, has_input && is_labels),
        ]
        .spacing(4)
        .align_y(Alignment::Center);
        let shown = r.values.as_ref();
        if let Some(s) = shown {
            if s.t() > 1 {
                controls = controls.push(small(format!("T {}", sel.t)));
                controls = controls.push(
                    slider(0.0..=(s.t() - 1) as f64, sel.t as f64, |x| Message::Viewer(ViewerMsg::T(x as usize)))
                        .width(90),
                );
            }
            if s.z() > 1 {
                controls = controls.push(small(format!("Z {}", sel.z)));
                controls = controls.push(
                    slider(0.0..=(s.z() - 1) as f64, sel.z as f64, |x| Message::Viewer(ViewerMsg::Z(x as usize)))
                        .width(90),
                );
            }
            if s.c() > 1 {
                let names: Vec<String> = (0..s.c())
                    .map(|c| s.channel_names().get(c).cloned().unwrap_or_else(|| format!("channel {c}")))
                    .collect();
                let current = names.get(sel.c).cloned();
                let names2 = names.clone();
                controls = controls.push(
                    pick_list(names, current, move |n| {
                        Message::Viewer(ViewerMsg::C(names2.iter().position(|x| *x == n).unwrap_or(0)))
                    })
                    .text_size(12),
                );
            }
        }
        if !(is_labels && v.source == Source::Output) {
            controls = controls.push(
                checkbox(v.auto)
                    .label("auto contrast")
                    .text_size(12)
                    .on_toggle(|b| Message::Viewer(ViewerMsg::Auto(b))),
            );
            let (lo, hi) = r.data_range;
            if hi > lo {
                controls = controls
                    .push(
                        slider(lo..=hi, v.lo.clamp(lo, hi), |x| Message::Viewer(ViewerMsg::Lo(x)))
                            .step((hi - lo) / 500.0)
                            .width(80),
                    )
                    .push(
                        slider(lo..=hi, v.hi.clamp(lo, hi), |x| Message::Viewer(ViewerMsg::Hi(x)))
                            .step((hi - lo) / 500.0)
                            .width(80),
                    );
            }
        }
        if v.source == Source::Overlay {
            controls = controls.push(small("opacity"));
            controls = controls
                .push(slider(0.0..=1.0, v.opacity, |x| Message::Viewer(ViewerMsg::Opacity(x))).step(0.05).width(80));
        }
        let readout = match (v.hover, shown) {
            (Some((x, y)), Some(s)) => match value_at(s, sel, x, y) {
                Some(val) => format!("x {x}  y {y}  value {}", trim_float(val)),
                None => String::new(),
            },
            _ => format!("{}×{} — scroll to zoom, drag to pan", r.w, r.h),
        };
        controls = controls.push(
            button(text("Fit").size(12))
                .padding([2, 8])
                .style(button::secondary)
                .on_press(Message::Viewer(ViewerMsg::FitImage)),
        );
        controls = controls.push(small(readout).color(DIM));
        let img = canvas(ImageCanvas { handle: &r.handle, w: r.w, h: r.h, view: v.view }).width(Fill).height(Fill);
        column![controls.wrap(), Element::from(img).map(Message::Image)].spacing(4).into()
    }
}

fn table_view(t: &petri_api::Table) -> Element<'static, Message> {
    let cols = t.columns();
    let mut header = row![].spacing(0);
    for c in cols {
        header = header.push(container(text(c.name.clone()).size(12)).width(110).padding(2));
    }
    let mut rows = column![header].spacing(0);
    let n = t.n_rows().min(500);
    for r in 0..n {
        let mut line = row![].spacing(0);
        for c in cols {
            line = line.push(container(text(c.data.cell(r)).size(12)).width(110).padding(2));
        }
        rows = rows.push(line);
    }
    let note =
        if t.n_rows() > n { format!("first {n} of {} rows", t.n_rows()) } else { format!("{} rows", t.n_rows()) };
    column![
        small(note).color(DIM),
        scrollable(rows)
            .direction(scrollable::Direction::Both {
                vertical: scrollable::Scrollbar::new(),
                horizontal: scrollable::Scrollbar::new()
            })
            .height(Fill)
    ]
    .into()
}

fn port_type_name(t: PortType) -> &'static str {
    t.name()
}

fn trim_float(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e12 { format!("{}", v as i64) } else { format!("{v:.4}") }
}

/// A round slider step near `x` (1, 2 or 5 times a power of ten).
fn nice_step(x: f64) -> f64 {
    if !(x > 0.0) || !x.is_finite() {
        return 1.0;
    }
    let p = 10f64.powf(x.log10().floor());
    let m = x / p;
    p * if m < 1.5 {
        1.0
    } else if m < 3.5 {
        2.0
    } else if m < 7.5 {
        5.0
    } else {
        10.0
    }
}

fn range_text(p: &ParamSpec) -> String {
    let fmt = |x: f64| trim_float(x);
    match &p.kind {
        ParamKind::Int { min, max } => match (min, max) {
            (Some(a), Some(b)) => format!("{a}…{b}"),
            (Some(a), None) => format!("≥ {a}"),
            (None, Some(b)) => format!("≤ {b}"),
            _ => String::new(),
        },
        ParamKind::Float { min, max, min_exclusive } | ParamKind::Floats { min, max, min_exclusive, .. } => {
            let lo = min.map(|a| format!("{} {}", if *min_exclusive { ">" } else { "≥" }, fmt(a)));
            let hi = max.map(|b| format!("≤ {}", fmt(b)));
            let per_axis = if matches!(p.kind, ParamKind::Floats { .. }) { " (one, or per axis Z, Y, X)" } else { "" };
            [lo, hi].into_iter().flatten().collect::<Vec<_>>().join(", ") + per_axis
        }
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slider_steps_are_round() {
        assert!((nice_step(0.05) - 0.05).abs() < 1e-12);
        assert!((nice_step(0.03) - 0.02).abs() < 1e-12);
        assert!((nice_step(0.1) - 0.1).abs() < 1e-12);
        assert_eq!(nice_step(0.0), 1.0);
    }
}
